"""``agentrt bench overhead``: what the orchestrator itself costs per iteration.

The same two-iteration agent runs go (a) through ``Agent.run`` and (b) through a loop
that drives the engine directly with the very prompts the orchestrator sent and calls
the tool itself. The engine is a ``ScriptedEngine`` with a zero-cost timing model, so
both paths pay the same engine cost and the difference is the orchestrator's work:
rendering, parsing, hints, scheduling tools, records and events.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from contextlib import aclosing
from typing import Any

from agentrt import Agent, SamplingOptions, Switches, tool
from agentrt.engine import GenerateRequest, ScriptedEngine, TimingModel

from ._output import bar_chart, markdown_table, out_dir, write_json

_ANSWER = "The population of Lyon is 522,250 people, about a quarter of that of Paris. " * 2
_CALL = '<tool_call>\n{"name": "lookup", "arguments": {"city": "Lyon"}}\n</tool_call>'


@tool
async def lookup(city: str) -> str:
    """Population of a city.

    Args:
        city: the city
    """
    return f"{city}: 522250"


def _engine() -> ScriptedEngine:
    zero = TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0)
    # By the prompt, as in the scale benchmark: robust to how calls interleave.
    return ScriptedEngine(
        lambda ctx: _ANSWER if "<tool_response>" in ctx.prompt_text else _CALL, timing=zero
    )


async def _through_agent(runs: int, switches: Switches) -> tuple[float, list[GenerateRequest], int]:
    engine = _engine()
    agent = Agent(
        instructions="You look up populations.",
        tools=[lookup],
        engine=engine,
        switches=switches,
        constrain_calls=False,
        sampling=SamplingOptions(max_tokens=256),
    )
    iterations = 0
    t0 = time.perf_counter()
    for _ in range(runs):
        result = await agent.run("What is the population of Lyon?")
        iterations += len(result.iterations)
    elapsed = time.perf_counter() - t0
    await engine.aclose()
    return elapsed, engine.requests, iterations


async def _direct(requests: list[GenerateRequest]) -> float:
    """The engine driven by hand with the same requests (split prefills included);
    the tool is called after each response that asked for it."""
    engine = _engine()
    generated = 0
    t0 = time.perf_counter()
    for req in requests:
        async with aclosing(engine.generate(req)) as stream:
            async for _ in stream:
                pass
        if req.forced_output is None:  # a generate call, not a split prefill
            generated += 1
            if generated % 2 == 1:
                await lookup.invoke({"city": "Lyon"})
    elapsed = time.perf_counter() - t0
    await engine.aclose()
    return elapsed


async def measure(runs: int = 200, repeats: int = 5) -> dict[str, Any]:
    """Median over ``repeats`` of the per-iteration cost of both paths (all switches on)."""
    per_iter_agent, per_iter_direct = [], []
    for _ in range(repeats):
        agent_s, requests, iterations = await _through_agent(runs, Switches())
        direct_s = await _direct(requests)
        per_iter_agent.append(agent_s / iterations)
        per_iter_direct.append(direct_s / iterations)
    a, d = statistics.median(per_iter_agent), statistics.median(per_iter_direct)
    return {
        "runs": runs,
        "repeats": repeats,
        "agent_s_per_iteration": a,
        "direct_s_per_iteration": d,
        "overhead_us_per_iteration": (a - d) * 1e6,
    }


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--iteration-s",
        type=float,
        default=None,
        help="a real engine's time per iteration, to express the overhead as a share",
    )
    p.add_argument("--out", default=None)


def overhead_rows(res: dict[str, Any], iteration_s: float | None) -> list[list[Any]]:
    rows: list[list[Any]] = [
        ["through Agent.run", f"{res['agent_s_per_iteration'] * 1e6:.0f} µs/iteration"],
        ["engine driven directly", f"{res['direct_s_per_iteration'] * 1e6:.0f} µs/iteration"],
        ["orchestrator overhead", f"{res['overhead_us_per_iteration']:.0f} µs/iteration"],
    ]
    if iteration_s:
        share = res["overhead_us_per_iteration"] / 1e6 / iteration_s
        rows.append(["share of a real iteration", f"{share:.3%} (of {iteration_s:.2f} s)"])
    return rows


def main(args: argparse.Namespace) -> int:
    res = asyncio.run(measure(args.runs, args.repeats))
    table = markdown_table(["path", "cost"], overhead_rows(res, args.iteration_s))
    print(table)
    folder = out_dir(args.out, "bench-overhead")
    write_json(folder / "overhead.json", {**res, "iteration_s": args.iteration_s})
    (folder / "overhead.md").write_text(table + "\n")
    bar_chart(
        folder / "overhead.png",
        "Cost per agent iteration (ScriptedEngine, zero-cost steps)",
        ["engine driven directly", "through Agent.run"],
        {
            "µs/iteration": [
                res["direct_s_per_iteration"] * 1e6,
                res["agent_s_per_iteration"] * 1e6,
            ]
        },
        "µs",
    )
    print(f"results in {folder}")
    return 0
