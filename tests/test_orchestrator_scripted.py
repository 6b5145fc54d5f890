"""The agent loop on ScriptedEngine and virtual time: exact timings per switch."""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
import pytest

from agentrt import Agent, RunResult, Switches, tool
from agentrt.engine import ScriptedEngine, SessionId, TimingModel
from agentrt.testing import run_virtual

P = 0.001  # prefill seconds per uncached token
D = 0.01  # seconds per decode step
TOOL_S = 0.5
BLOCK = 16


@tool(expected_latency_s=TOOL_S)
async def search(q: str) -> str:
    """Search the web.

    Args:
        q: the query
    """
    await anyio.sleep(TOOL_S)
    return f"results for {q}"


def call_text(name: str, args: dict[str, object], *, compact: bool = False) -> str:
    body = {"name": name, "arguments": args}
    js = json.dumps(body, separators=(",", ":")) if compact else json.dumps(body)
    return f"<tool_call>\n{js}\n</tool_call>"


def make_engine(replies: list[str]) -> ScriptedEngine:
    return ScriptedEngine(
        replies, timing=TimingModel(prefill_s_per_token=P, decode_step_s=D), block_size=BLOCK
    )


def run(
    replies: list[str],
    switches: Switches,
    make: Callable[[list[str]], ScriptedEngine] = make_engine,
    cache_salt: str | None = None,
) -> tuple[RunResult, ScriptedEngine]:
    async def main() -> tuple[RunResult, ScriptedEngine]:
        engine = make(replies)
        agent = Agent(
            instructions="Be brief.",
            tools=[search],
            engine=engine,
            switches=switches,
            constrain_calls=False,
            cache_salt=cache_salt,
        )
        result = await agent.run("Find x.")
        await engine.aclose()
        return result, engine

    return run_virtual(main)


REPLIES = [call_text("search", {"q": "x"}), "The answer is 42."]


def test_tool_starts_before_decoding_ends_when_streaming() -> None:
    result, _ = run(REPLIES, Switches())
    first = result.iterations[0]
    (span,) = first.tools
    assert span.start_t < first.end_t
    # The call closes at its JSON's last brace; "\n</tool_call>" and <|im_end|> follow (14 tokens).
    assert first.end_t - span.start_t == pytest.approx(14 * D)


def test_tool_waits_for_the_whole_response_without_streaming() -> None:
    result, _ = run(REPLIES, Switches(stream_tools=False))
    first = result.iterations[0]
    assert first.tools[0].start_t == pytest.approx(first.end_t)


def test_split_a_is_prefilled_while_tools_run() -> None:
    result, engine = run(REPLIES, Switches())
    first, second = result.iterations
    assert first.split_prefill is not None and first.split_prefill_span is not None
    lo, hi = first.split_prefill_span
    span = first.tools[0]
    assert span.start_t <= lo and hi <= span.end_t
    # The next prompt finds all of split A cached, in whole blocks.
    split_a = first.split_prefill.prompt_tokens
    assert second.cached_tokens == (split_a // BLOCK) * BLOCK
    assert len(engine.requests) == 3  # generate, prefill, generate


def test_a_salted_run_prefills_split_a_under_its_own_salt() -> None:
    result, engine = run(REPLIES, Switches(), cache_salt="tenant-a")
    first, second = result.iterations
    assert first.split_prefill is not None
    # The prefill went in with the run's salt, so the next call (same salt) finds it.
    assert [r.cache_salt for r in engine.requests] == ["tenant-a"] * 3
    assert second.cached_tokens == (first.split_prefill.prompt_tokens // BLOCK) * BLOCK


def test_ftr_gain_equals_the_timing_model_prediction() -> None:
    fast, _ = run(REPLIES, Switches())
    slow, _ = run(REPLIES, Switches.baseline())
    f0, f1 = fast.iterations
    s0, s1 = slow.iterations
    n0 = f0.output_tokens
    close_at = n0 - 1 - 14  # token index of the JSON's closing brace
    # All on: the tool starts at the brace; iteration 1 prefills only what split A left uncached.
    t1 = f0.first_token_t
    assert t1 == pytest.approx(f0.prompt_tokens * P)
    expect_fast = t1 + close_at * D + TOOL_S + (f1.prompt_tokens - f1.cached_tokens) * P
    # Baseline: the tool starts after the last token; the cache holds iteration 0's full blocks.
    expect_slow = t1 + (n0 - 1) * D + TOOL_S + (s1.prompt_tokens - s1.cached_tokens) * P
    assert fast.ftr_s == pytest.approx(expect_fast, abs=1e-9)
    assert slow.ftr_s == pytest.approx(expect_slow, abs=1e-9)
    assert s1.cached_tokens == ((s0.prompt_tokens + n0) // BLOCK) * BLOCK
    assert slow.ftr_s - fast.ftr_s == pytest.approx(
        (n0 - 1 - close_at) * D + (f1.cached_tokens - s1.cached_tokens) * P, abs=1e-9
    )


def test_baseline_rerender_diverges_where_the_model_wrote_non_canonical_json() -> None:
    replies = [call_text("search", {"q": "x"}, compact=True), "Done."]
    base, _ = run(replies, Switches.baseline())
    logged, _ = run(replies, Switches())
    (div,) = base.divergences
    assert div.iteration == 1
    # The re-rendered prompt differs right after '{"name":' (canonical JSON has a space).
    assert base.iterations[1].cached_tokens <= (div.position // BLOCK) * BLOCK
    assert logged.divergences == []
    assert logged.iterations[1].cached_tokens > base.iterations[1].cached_tokens


def test_parallel_calls_each_start_when_their_own_json_closes() -> None:
    two = call_text("search", {"q": "a"}) + "\n" + call_text("search", {"q": "b"})
    result, _ = run([two, "Both found."], Switches())
    a, b = result.iterations[0].tools
    gap = len("\n</tool_call>\n") + len(call_text("search", {"q": "b"})) - len("\n</tool_call>")
    assert b.start_t - a.start_t == pytest.approx(gap * D)
    assert [m.role for m in result.messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]


def test_token_log_prompt_extends_the_previous_prompt_exactly() -> None:
    # Compact JSON: what the model wrote is not what re-rendering the message would give,
    # so only the token log makes the next prompt start with every generated token.
    replies = [call_text("search", {"q": "x"}, compact=True), "Done."]
    _, engine = run(replies, Switches())
    gen0, _prefill, gen1 = engine.requests
    tok = engine.tokenizer
    generated = (*tok.encode(replies[0]), tok.im_end_id)
    head = (*gen0.prompt, *generated, *tok.turn_close)
    assert gen1.prompt[: len(head)] == head
    assert len(gen1.prompt) > len(head)  # then the tool's result


def test_hints_label_system_query_and_tool_output() -> None:
    _, engine = run(REPLIES, Switches())
    tiers = {h.tier.name for h in engine.requests[2].hints}
    assert {"SYSTEM", "USER_QUERY", "TOOL_OUTPUT", "DEFAULT"} <= tiers
    assert all(h.tier.name == "SPLIT_PENDING" for h in engine.requests[1].hints)


def test_baseline_sends_no_hints_and_no_priority() -> None:
    _, engine = run(REPLIES, Switches.baseline())
    assert all(r.hints == () and r.priority == 0 for r in engine.requests)


@pytest.mark.parametrize("run_priority", [True, False])
def test_earlier_runs_get_higher_priority(run_priority: bool) -> None:
    async def main() -> list[int]:
        engine = make_engine(["First.", "Second."])
        agent = Agent(engine=engine, switches=Switches(run_priority=run_priority))
        await agent.run("One.")
        await agent.run("Two.")
        await engine.aclose()
        return [r.priority for r in engine.requests]

    first, second = run_virtual(main)
    # vLLM serves lower numbers first; with the switch off every run ties (FCFS).
    assert first < second if run_priority else first == second == 0


class ReleaseRecorder(ScriptedEngine):
    """Records which sessions the agent loop releases."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__(replies, timing=TimingModel(P, D), block_size=BLOCK)
        self.released: list[SessionId] = []

    async def release(self, session: SessionId) -> None:
        self.released.append(session)
        await super().release(session)


@pytest.mark.parametrize("cache_hints", [True, False])
def test_a_run_releases_its_session_at_its_end(cache_hints: bool) -> None:
    async def main() -> tuple[list[SessionId], list[SessionId | None]]:
        engine = ReleaseRecorder(REPLIES)
        agent = Agent(
            tools=[search],
            engine=engine,
            constrain_calls=False,
            switches=Switches(cache_hints=cache_hints),
        )
        await agent.run("Find x.")
        await engine.aclose()
        return engine.released, [r.session for r in engine.requests]

    released, sessions = run_virtual(main)
    assert released == (sessions[:1] if cache_hints else [])


def test_a_cancelled_turn_leaves_the_session_as_before() -> None:
    async def main() -> tuple[int, int, int, int, str]:
        engine = make_engine([REPLIES[0], "first answer", "second answer"])
        agent = Agent(
            instructions="Be brief.", tools=[search], engine=engine, constrain_calls=False
        )
        session = agent.session()
        with anyio.move_on_after(0.3):  # cancels the turn while its tool is running
            await session.run("Find x.")
        before = (len(session.log), len(session.messages))
        result = await session.run("Just answer.")
        session.log.check_integrity()
        await engine.aclose()
        return (*before, len(result.iterations), result.messages[1].role, result.final_text)

    log_len, n_messages, iterations, role, text = run_virtual(main)
    assert (log_len, n_messages) == (0, 0)
    assert iterations == 1 and role == "user" and text == "first answer"


def test_a_session_continues_on_the_same_token_log() -> None:
    async def main() -> tuple[tuple[int, ...], tuple[int, ...]]:
        engine = make_engine(["Hi.", "Still here."])
        session = Agent(instructions="Be brief.", engine=engine).session()
        await session.run("Hello")
        await session.run("Are you there?")
        await engine.aclose()
        return engine.requests[0].prompt, engine.requests[1].prompt

    first, second = run_virtual(main)
    assert second[: len(first)] == first and len(second) > len(first)


def test_a_last_response_that_still_calls_tools_ends_at_the_iteration_limit() -> None:
    async def main() -> RunResult:
        engine = make_engine([REPLIES[0], REPLIES[0]])
        agent = Agent(tools=[search], engine=engine, max_iterations=2, constrain_calls=False)
        result = await agent.run("Find x.")
        await engine.aclose()
        return result

    result = run_virtual(main)
    assert result.status == "max_iterations" and result.ftr_s is None
    assert len(result.iterations) == 2 and len(result.iterations[1].tools) == 0


def test_a_split_prefill_still_running_when_tools_finish_is_cancelled() -> None:
    # Re-rendered prompts (no token log) diverge from the compact JSON the model wrote, so
    # split A must be recomputed, and prefill is slow here: the 0.5 s tool finishes first.
    replies = [call_text("search", {"q": "x"}, compact=True), "Done."]
    switches = Switches(token_log=False, stream_tools=True, split_prefill=True)

    slow_prefill = TimingModel(prefill_s_per_token=0.01, decode_step_s=D)
    result, _ = run(
        replies, switches, lambda r: ScriptedEngine(r, timing=slow_prefill, block_size=BLOCK)
    )
    first, second = result.iterations
    assert first.split_prefill is None  # it never finished
    assert second.sent_t == pytest.approx(first.tools[0].end_t)
