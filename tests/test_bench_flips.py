"""``agentrt bench flips``: what counts as a flip, and the example agents it runs (issue 14)."""

from __future__ import annotations

import anyio

from agentrt import Agent, RunResult, Switches, tool
from agentrt.bench._flips import compare, example_agents, shares
from agentrt.engine import ScriptedEngine
from agentrt.testing import run_virtual


@tool(expected_latency_s=0.01)
async def lookup(city: str) -> str:
    """Look a city up.

    Args:
        city: the city
    """
    await anyio.sleep(0.01)
    return f"{city}: 42"


def _call(city: str) -> str:
    return f'<tool_call>\n{{"name": "lookup", "arguments": {{"city": "{city}"}}}}\n</tool_call>'


def _run(replies: list[str], sw: Switches) -> RunResult:
    async def main() -> RunResult:
        engine = ScriptedEngine(replies)
        agent = Agent(tools=[lookup], engine=engine, switches=sw, constrain_calls=False)
        result = await agent.run("Population?")
        await engine.aclose()
        return result

    return run_virtual(main)


def test_the_same_calls_and_answer_are_no_flip() -> None:
    base = _run([_call("Paris"), "Paris has 42."], Switches.baseline())
    other = _run([_call("Paris"), "Paris has 42."], Switches())
    row = compare(base, other)
    assert not row["flipped"] and row["baseline"]["calls"] == [[("lookup", {"city": "Paris"})], []]


def test_other_arguments_or_another_answer_are_flips() -> None:
    base = _run([_call("Paris"), "Paris has 42."], Switches.baseline())
    args = compare(base, _run([_call("Lyon"), "Paris has 42."], Switches()))
    answer = compare(base, _run([_call("Paris"), "It is 42."], Switches()))
    assert args["flipped"] and args["calls_differ"] and not args["final_differs"]
    assert answer["flipped"] and answer["final_differs"] and not answer["calls_differ"]
    summary = shares([{"mode": "all", **args}, {"mode": "all", **answer}])
    assert summary[0]["flips"] == 2 and summary[0]["share"] == 1.0


def test_the_example_agents_bring_at_least_30_questions() -> None:
    agents = example_agents()
    assert [a.name for a, _ in agents] == ["units", "research", "files"]
    assert sum(len(qs) for _, qs in agents) >= 30
