"""Split prefill on spare capacity only: skipped when the engine is saturated or the tools
are faster, cancelled when the results come first, and never a foreground delay (issue 14).
"""

from __future__ import annotations

import collections
import json
import statistics
from collections.abc import Callable

import anyio
import httpx
import pytest

from agentrt import Agent, RunResult, Switches, tool
from agentrt._split_policy import (
    IssueSplit,
    SkipSplit,
    decide_split,
    prefill_rate,
    uncached_full_blocks,
)
from agentrt.engine import (
    BACKGROUND_PRIORITY,
    ChatTokenizer,
    EngineInfo,
    EngineLoad,
    GenerateRequest,
    HTTPEngine,
    RequestId,
    RequestStats,
    SamplingOptions,
    ScriptedEngine,
    TimingModel,
)
from agentrt.engine._tokenizer import ByteCodec
from agentrt.testing import run_virtual

IDLE = EngineLoad(waiting=0, running=0)


def call_text(q: str, name: str = "search") -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': {'q': q}})}\n</tool_call>"


def search_tool(sleep_s: float, expected_s: float, name: str = "search"):  # type: ignore[no-untyped-def]
    # Tool latencies are learned process-wide by name: each test names its own tool.
    @tool(name=name, expected_latency_s=expected_s)
    async def search(q: str) -> str:
        """Search the web.

        Args:
            q: the query
        """
        await anyio.sleep(sleep_s)
        return f"results for {q}"

    return search


# -- the policy ------------------------------------------------------------------------------


def test_policy_issues_on_an_idle_engine_when_the_tools_are_slower() -> None:
    assert decide_split(IDLE, new_tokens=64, tools_left_s=1.0, tokens_per_s=1000.0) == IssueSplit(
        64
    )


@pytest.mark.parametrize(
    "load",
    [
        EngineLoad(waiting=1, running=3),
        EngineLoad(waiting=0, running=8, full=True),
        EngineLoad(waiting=0, running=0, known=False),
    ],
)
def test_policy_skips_a_saturated_or_unknown_engine(load: EngineLoad) -> None:
    decision = decide_split(load, new_tokens=64, tools_left_s=10.0, tokens_per_s=1000.0)
    assert decision == SkipSplit("saturated")


@pytest.mark.parametrize(
    ("running", "kv_usage", "max_num_seqs", "full_steps", "full"),
    [
        (3, 0.5, 4, False, False),
        (4, 0.5, 4, False, True),  # the batch holds max_num_seqs
        (3, 0.95, 4, False, True),  # the KV cache is nearly used up
        (9, 0.5, None, False, False),  # a server's metrics do not give the limit
        (1, 0.1, None, True, True),  # an engine that saw its steps full
    ],
)
def test_every_engine_reports_full_by_one_rule(
    running: int, kv_usage: float, max_num_seqs: int | None, full_steps: bool, full: bool
) -> None:
    load = EngineLoad.from_gauges(
        waiting=0,
        running=running,
        kv_usage=kv_usage,
        max_num_seqs=max_num_seqs,
        full_steps=full_steps,
    )
    assert (load.full, load.saturated) == (full, full)


def test_policy_skips_when_the_tools_end_before_the_prefill_would() -> None:
    # 500 tokens at 1000 tok/s = 0.5 s > 0.4 s of tools left.
    assert decide_split(IDLE, new_tokens=500, tools_left_s=0.4, tokens_per_s=1000.0) == SkipSplit(
        "tools_faster"
    )
    # The engine's own figure wins over the run's estimate.
    fast = EngineLoad(0, 0, prefill_tokens_per_s=10_000.0)
    assert decide_split(fast, new_tokens=500, tools_left_s=0.4, tokens_per_s=1000.0) == IssueSplit(
        500
    )


def test_policy_skips_a_prefill_that_adds_nothing_unless_it_places_hints() -> None:
    assert decide_split(IDLE, new_tokens=0, tools_left_s=1.0, tokens_per_s=None) == SkipSplit(
        "nothing_new"
    )
    relabel = decide_split(IDLE, new_tokens=0, tools_left_s=1.0, tokens_per_s=None, relabels=True)
    assert relabel == IssueSplit(0)


def test_uncached_full_blocks_counts_only_new_full_blocks() -> None:
    cached = list(range(40))  # blocks of 16: [0,16) [16,32) cached, 8 tokens dangling
    assert uncached_full_blocks([*cached, 40, 41], cached, 16) == 0  # 42 tokens: no new block
    assert uncached_full_blocks([*cached, *range(40, 50)], cached, 16) == 16  # 50: one more
    diverged = [*range(20), 999, *range(21, 50)]  # differs inside the second block
    assert uncached_full_blocks(diverged, cached, 16) == 32


def test_prefill_rate_leaves_queueing_out() -> None:
    stats = RequestStats(RequestId("r"), 600, 100, 1, "stop", 0.0, 0.75, 1.0, queue_s=0.25)
    assert prefill_rate(stats) == pytest.approx(500 / 0.5)
    tiny = RequestStats(RequestId("r"), 110, 100, 1, "stop", 0.0, 0.5, 1.0)
    assert prefill_rate(tiny) is None


# -- the engines' load signal ----------------------------------------------------------------


def test_scripted_engine_reports_waiting_and_full_steps() -> None:
    async def main() -> tuple[EngineLoad, EngineLoad, EngineLoad]:
        engine = ScriptedEngine(timing=TimingModel(max_num_seqs=1, prefill_s_per_token=0.002))
        idle = await engine.load()
        req = GenerateRequest(tuple(range(1, 50)), SamplingOptions(max_tokens=50))
        forced = GenerateRequest(req.prompt, forced_output=(7,) * 50)

        async def drain(r: GenerateRequest) -> None:
            async for _ in engine.generate(r):
                pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(drain, forced)
            tg.start_soon(drain, forced)
            await anyio.sleep(0.2)
            busy = await engine.load()
        after = await engine.load()
        await engine.aclose()
        return idle, busy, after

    idle, busy, after = run_virtual(main)
    assert not idle.saturated and idle.prefill_tokens_per_s == pytest.approx(500.0)
    assert busy.waiting == 1 and busy.running == 1 and busy.full and busy.saturated
    assert not after.saturated


def _http_engine(metrics: str | None) -> HTTPEngine:
    def handler(request: httpx.Request) -> httpx.Response:
        if metrics is None:
            return httpx.Response(404)
        return httpx.Response(200, text=metrics)

    client = httpx.AsyncClient(base_url="http://engine", transport=httpx.MockTransport(handler))
    info = EngineInfo("m", 4096, 16, True, "http")
    return HTTPEngine(client, ChatTokenizer(ByteCodec()), info, 100)


@pytest.mark.parametrize(
    ("metrics", "waiting", "full", "saturated"),
    [
        (
            'vllm:num_requests_running{m="x"} 2\nvllm:num_requests_waiting{m="x"} 0\n',
            0,
            False,
            False,
        ),
        ("vllm:num_requests_running 4\nvllm:num_requests_waiting 3\n", 3, False, True),
        (
            "vllm:num_requests_running 1\nvllm:num_requests_waiting 0\n"
            "vllm:kv_cache_usage_perc 0.97\n",
            0,
            True,
            True,
        ),
    ],
)
@pytest.mark.anyio
async def test_http_engine_load_reads_vllm_gauges(
    metrics: str, waiting: int, full: bool, saturated: bool
) -> None:
    engine = _http_engine(metrics)
    load = await engine.load()
    await engine.aclose()
    assert (load.waiting, load.full, load.saturated, load.known) == (waiting, full, saturated, True)


@pytest.mark.anyio
async def test_http_engine_without_metrics_counts_as_saturated() -> None:
    engine = _http_engine(None)
    load = await engine.load()
    await engine.aclose()
    assert not load.known and load.saturated


# -- the agent loop ------------------------------------------------------------------------


def _agent(
    engine: ScriptedEngine, sleep_s: float, expected_s: float, sw: Switches, name: str = "search"
) -> Agent:
    return Agent(
        instructions="Be brief.",
        tools=[search_tool(sleep_s, expected_s, name)],
        engine=engine,
        switches=sw,
        constrain_calls=False,
    )


def _prefills(engine: ScriptedEngine) -> list[GenerateRequest]:
    return [r for r in engine.requests if r.priority == BACKGROUND_PRIORITY]


def test_split_prefill_runs_at_background_priority_on_an_idle_engine() -> None:
    async def main() -> tuple[RunResult, ScriptedEngine]:
        engine = ScriptedEngine([call_text("x"), "42"], block_size=16)
        result = await _agent(engine, 0.5, 0.5, Switches()).run("Find x.")
        await engine.aclose()
        return result, engine

    result, engine = run_virtual(main)
    assert result.iterations[0].split_outcome == "done"
    (prefill,) = _prefills(engine)
    assert prefill.sampling.max_tokens == 1


def test_split_prefill_is_skipped_when_the_engine_is_saturated() -> None:
    async def main() -> tuple[RunResult, ScriptedEngine]:
        timing = TimingModel(max_num_seqs=2)
        engine = ScriptedEngine([call_text("x"), "42"], timing=timing, block_size=16)
        hog = GenerateRequest((1, 2, 3), forced_output=(5,) * 400)

        async def drain() -> None:
            async for _ in engine.generate(hog):
                pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(drain)
            result = await _agent(engine, 0.5, 0.5, Switches()).run("Find x.")
        await engine.aclose()
        return result, engine

    result, engine = run_virtual(main)
    assert result.iterations[0].split_outcome == "saturated"
    assert _prefills(engine) == []


def test_split_prefill_is_skipped_when_the_tool_is_faster() -> None:
    async def main() -> tuple[RunResult, ScriptedEngine]:
        engine = ScriptedEngine([call_text("x", "fast"), "42"], block_size=16)
        result = await _agent(engine, 0.001, 0.001, Switches(), "fast").run("Find x.")
        await engine.aclose()
        return result, engine

    result, engine = run_virtual(main)
    assert result.iterations[0].split_outcome == "tools_faster"
    assert _prefills(engine) == []


def test_split_prefill_is_cancelled_when_the_results_come_first() -> None:
    async def main() -> tuple[RunResult, ScriptedEngine]:
        # Prefill is slow (0.02 s/token: a 16-token tail takes 0.3 s) and the tool says
        # 5 s but answers in 0.05 s: the results arrive while the prefill still runs.
        timing = TimingModel(prefill_s_per_token=0.02, decode_step_s=0.001)
        engine = ScriptedEngine([call_text("x", "slow_claim"), "42"], timing=timing, block_size=16)
        result = await _agent(engine, 0.05, 5.0, Switches(), "slow_claim").run("Find x.")
        await engine.aclose()
        return result, engine

    result, engine = run_virtual(main)
    first, second = result.iterations
    assert first.split_outcome == "cancelled" and first.split_prefill is None
    assert len(_prefills(engine)) == 1
    # The next call goes out the moment the tool is done: nothing waited for the prefill.
    assert second.sent_t == pytest.approx(first.tools[0].end_t)


def _loaded(split: bool, gap_s: float) -> tuple[list[float], list[float], Outcomes]:
    """16 agents arriving ``gap_s`` apart on an engine of 4 sequences, all switches on,
    split prefill on or off: FTRs, every call's TTFT, and what became of each split."""

    async def main() -> tuple[list[float], list[float], Outcomes]:
        timing = TimingModel(prefill_s_per_token=0.001, decode_step_s=0.01, max_num_seqs=4)
        engine = ScriptedEngine(
            lambda ctx: (
                "done" if "results for" in ctx.prompt_text else call_text("x" * 40, "loaded")
            ),
            timing=timing,
            block_size=16,
        )
        agent = _agent(engine, 0.3, 0.3, Switches(split_prefill=split), "loaded")
        results: list[RunResult] = []

        async def one(i: int) -> None:
            await anyio.sleep(gap_s * i)
            results.append(await agent.run(f"Question {i}: " + "context " * 40))

        async with anyio.create_task_group() as tg:
            for i in range(16):
                tg.start_soon(one, i)
        await engine.aclose()
        ftrs = [r.ftr_s for r in results if r.ftr_s is not None]
        ttfts = [t for r in results for it in r.iterations if (t := it.ttft_s) is not None]
        outcomes = collections.Counter(it.split_outcome for r in results for it in r.iterations)
        return ftrs, ttfts, outcomes

    return run_virtual(main)


Outcomes = collections.Counter[str | None]


@pytest.mark.parametrize(
    ("gap_s", "ran"),
    [
        (0.05, lambda o: o["saturated"] >= 12),  # overloaded: (nearly) all skipped
        (1.0, lambda o: o["done"] >= 4 and o["cancelled"] >= 1),  # spare room: they run
    ],
    ids=["overloaded", "spare-room"],
)
def test_split_prefill_never_delays_foreground_first_tokens_under_load(
    gap_s: float, ran: Callable[[Outcomes], bool]
) -> None:
    off_ftr, off_ttft, off_outcomes = _loaded(False, gap_s)
    on_ftr, on_ttft, on_outcomes = _loaded(True, gap_s)
    assert set(off_outcomes) == {None} and len(on_ftr) == len(off_ftr) == 16
    assert ran(on_outcomes), on_outcomes
    # Deterministic engine: a margin this wide only fails if prefills take foreground room.
    assert statistics.median(on_ftr) <= 1.05 * statistics.median(off_ftr)
    assert max(on_ttft) <= 1.05 * max(off_ttft)
    assert statistics.mean(on_ttft) <= 1.05 * statistics.mean(off_ttft)
