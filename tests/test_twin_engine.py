"""The vLLM twin as an Engine: vLLM's real scheduler and KV cache, no model, virtual time.

Each test runs on ``run_virtual``, so every timestamp is exactly what the cost model
gives. The model folder holds only a config.json (the scheduler needs no weights).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from contextlib import aclosing
from pathlib import Path

import pytest
from scheduler_helpers import write_model_dir
from twin_helpers import measured_profile

from agentrt.engine import (
    ByteCodec,
    CacheHint,
    ChatTokenizer,
    EngineLoad,
    GenerateRequest,
    PrefillRequest,
    PromptTooLongError,
    RequestStats,
    SamplingOptions,
    SessionId,
    Tier,
    TokenDelta,
)
from agentrt.engine._clock import now
from agentrt.engine._twin import TwinEngine, TwinOptions
from agentrt.engine._twin_build import TwinOverrides, twin_options
from agentrt.engine._twin_core import TwinSettings
from agentrt.engine._twin_cost import LinearStepCost
from agentrt.engine._twin_model import ModelSpec
from agentrt.engine._twin_profile import (
    MeasuredProfile,
    RooflineProfile,
    dump_profile,
    load_profile,
)
from agentrt.engine._twin_roofline import RooflineCost, kv_cache_blocks
from agentrt.testing import run_virtual

# 10 ms a step, 1 ms per prefill token, 2 ms per decoding sequence, 5 ms per new request.
COST = LinearStepCost(step_s=0.01, prefill_token_s=0.001, decode_seq_s=0.002, new_request_s=0.005)
TOK = ChatTokenizer(ByteCodec())


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ModelSpec:
    return ModelSpec.load(
        write_model_dir(tmp_path_factory.mktemp("tiny-llama"), max_position_embeddings=4096)
    )


def make_twin(model: ModelSpec, **settings: object) -> TwinEngine:
    base: dict[str, object] = {
        "block_size": 16,
        "num_blocks": 64,
        "max_model_len": 512,
        "max_num_seqs": 4,
        "max_num_batched_tokens": 64,
    }
    base.update(settings)
    return TwinEngine(TwinOptions(model, COST, TwinSettings(**base), "float32", TOK))  # type: ignore[arg-type]


async def collect(
    engine: TwinEngine, req: GenerateRequest
) -> tuple[list[TokenDelta], RequestStats]:
    deltas = [d async for d in engine.generate(req)]
    stats = deltas[-1].stats
    assert stats is not None
    return deltas, stats


def forced(prompt: range | tuple[int, ...], out: tuple[int, ...], **kw: object) -> GenerateRequest:
    return GenerateRequest(tuple(prompt), forced_output=out, **kw)  # type: ignore[arg-type]


def test_every_step_takes_what_the_cost_model_says(model: ModelSpec) -> None:
    async def main() -> tuple[list[TokenDelta], RequestStats]:
        engine = make_twin(model)
        try:
            return await collect(engine, forced(range(100, 200), (104, 105, 106)))
        finally:
            await engine.aclose()

    deltas, stats = run_virtual(main)
    # The 64-token budget splits the prompt: 64 tokens (a new request), then 36 more,
    # which samples the first token; then one decode step per token.
    t1 = 0.01 + 0.064 + 0.005
    t2 = t1 + 0.01 + 0.036
    t3 = t2 + 0.01 + 0.002
    t4 = t3 + 0.01 + 0.002
    assert [d.t for d in deltas] == pytest.approx([t2, t3, t4])
    assert [t for d in deltas for t in d.token_ids] == [104, 105, 106]
    assert "".join(d.text for d in deltas) == "hij"
    assert stats.first_token_t == pytest.approx(t2) and stats.finish_t == pytest.approx(t4)
    assert (stats.prompt_tokens, stats.cached_tokens, stats.output_tokens) == (100, 0, 3)
    assert stats.queue_s == 0.0 and stats.finish_reason == "length"


def test_prefix_hits_are_vllms_full_blocks(model: ModelSpec) -> None:
    async def main() -> tuple[list[int], int, int]:
        engine = make_twin(model)
        cached = []
        for tail in (range(500, 520), range(600, 610)):
            _, stats = await collect(engine, forced((*range(100, 140), *tail), (1,)))
            cached.append(stats.cached_tokens)
        s = await engine.stats()
        await engine.aclose()
        return cached, s.prefix_cache_queries, s.prefix_cache_hits

    cached, queries, hits = run_virtual(main)
    assert cached == [0, 32]  # two full 16-token blocks of the shared 40-token prefix
    assert (queries, hits) == (60 + 50, 32)


def test_closing_a_stream_early_aborts_its_request(model: ModelSpec) -> None:
    async def main() -> tuple[int, int, float]:
        engine = make_twin(model)
        got = 0
        async with aclosing(engine.generate(forced(range(100, 120), (1,) * 50))) as stream:
            async for delta in stream:
                got += len(delta.token_ids)
                if got >= 2:
                    break
        await asyncio.sleep(1.0)
        running = len(engine.core.scheduler.running) + len(engine.core.scheduler.waiting)
        steps = engine.num_steps
        await engine.aclose()
        return running, steps, engine.core.counters.kv_usage

    running, steps, usage = run_virtual(main)
    assert running == 0
    assert steps == 3  # prefill + one decode + the step the abort arrived in
    assert usage == 0.0


def test_priority_decides_who_waits(model: ModelSpec) -> None:
    async def main() -> dict[str, float]:
        engine = make_twin(model, max_num_seqs=1)
        first: dict[str, float] = {}

        async def run(name: str, priority: int, delay: float) -> None:
            await asyncio.sleep(delay)
            _, stats = await collect(
                engine, forced(range(ord(name), ord(name) + 20), (1, 2), priority=priority)
            )
            assert stats.first_token_t is not None
            first[name] = stats.first_token_t

        await asyncio.gather(run("a", 0, 0.0), run("b", 5, 0.001), run("c", 1, 0.002))
        await engine.aclose()
        return first

    first = run_virtual(main)
    assert sorted(first, key=first.__getitem__) == ["a", "c", "b"]


def test_load_follows_the_real_engines_rule(model: ModelSpec) -> None:
    """A batch at max_num_seqs is full and the request behind it waits: split prefill must
    see the same load on the twin as on the real engine (which cannot see its steps)."""

    async def main() -> tuple[EngineLoad, EngineLoad, EngineLoad]:
        engine = make_twin(model, max_num_seqs=2)
        idle = await engine.load()
        first_token = asyncio.Event()

        async def run(start: int) -> None:
            async for _ in engine.generate(forced(range(start, start + 20), (1,) * 30)):
                first_token.set()

        tasks = [asyncio.create_task(run(s)) for s in (100, 200, 300)]
        await first_token.wait()
        busy = await engine.load()
        await asyncio.gather(*tasks)
        done = await engine.load()
        await engine.aclose()
        return idle, busy, done

    idle, busy, done = run_virtual(main)
    assert not idle.saturated and not done.saturated
    assert (busy.running, busy.waiting, busy.full) == (2, 1, True)


def test_split_pending_expires_on_simulated_time(model: ModelSpec) -> None:
    async def main() -> tuple[int, int]:
        engine = make_twin(model)
        hint = CacheHint(0, 48, Tier.SPLIT_PENDING, ttl_s=5.0, base=Tier.DEFAULT)
        await engine.prefill(PrefillRequest(tuple(range(100, 148)), (hint,), SessionId("s")))
        before = (await engine.stats()).tiers["SPLIT_PENDING"].cached_blocks
        await asyncio.sleep(6.0)
        after = (await engine.stats()).tiers["SPLIT_PENDING"].cached_blocks
        await engine.aclose()
        return before, after

    assert run_virtual(main) == (3, 0)  # the 48-token prompt fills three blocks


def test_release_rides_with_the_next_request(model: ModelSpec) -> None:
    async def main() -> list[int]:
        engine = make_twin(model)
        hints = (CacheHint(0, 32, Tier.SYSTEM), CacheHint(32, 64, Tier.USER_QUERY))
        req = GenerateRequest(
            tuple(range(100, 165)),
            SamplingOptions(max_tokens=1),
            hints=hints,
            session=SessionId("run"),
        )
        await collect(engine, req)
        counts = [(await engine.stats()).tiers["USER_QUERY"].cached_blocks]
        await engine.release(SessionId("run"))
        counts.append((await engine.stats()).tiers["USER_QUERY"].cached_blocks)
        await collect(engine, forced(range(700, 710), (1,)))
        counts.append((await engine.stats()).tiers["USER_QUERY"].cached_blocks)
        await engine.aclose()
        return counts

    assert run_virtual(main) == [2, 2, 0]


def test_a_prompt_over_the_context_length_is_refused(model: ModelSpec) -> None:
    async def main() -> None:
        engine = make_twin(model)
        with pytest.raises(PromptTooLongError):
            await collect(engine, forced(range(512), (1,)))
        await engine.aclose()

    run_virtual(main)


def test_settings_refuse_a_cache_smaller_than_one_request() -> None:
    with pytest.raises(ValueError, match="cannot hold one request"):
        TwinSettings(
            block_size=16,
            num_blocks=8,
            max_model_len=512,
            max_num_seqs=4,
            max_num_batched_tokens=64,
        )
    with pytest.raises(ValueError, match="max_num_batched_tokens"):
        TwinSettings(
            block_size=16,
            num_blocks=64,
            max_model_len=256,
            max_num_seqs=128,
            max_num_batched_tokens=64,
        )


def test_roofline_twin_sizes_its_cache_from_the_gpu() -> None:
    options = twin_options("a100-80gb", TwinOverrides(max_num_batched_tokens=256))
    prof = load_profile("a100-80gb")
    assert isinstance(prof, RooflineProfile) and isinstance(options.cost, RooflineCost)
    expected = kv_cache_blocks(
        options.cost, block_size=16, gpu_memory_utilization=0.9, runtime_reserve_bytes=2 * 2**30
    )
    s = options.settings
    assert (s.num_blocks, s.block_size, s.max_num_batched_tokens) == (expected, 16, 256)
    assert s.max_num_seqs == 256 and s.max_model_len == 40960
    # The 40 GB A100 holds the same weights in half the memory: about a sixth of the cache.
    a100_40 = twin_options("a100-40gb", TwinOverrides(max_num_batched_tokens=256)).settings
    assert 4 * a100_40.num_blocks < s.num_blocks < 8 * a100_40.num_blocks
    h100 = twin_options("h100-80gb", TwinOverrides(max_num_batched_tokens=256))
    assert h100.settings.max_num_seqs == 256  # vLLM's 1024 capped by the 256-token budget
    with pytest.raises(ValueError, match="tensor parallelism"):
        twin_options(_measured(Path("/nonexistent")), TwinOverrides(tensor_parallel=2))


def _measured(folder: Path) -> MeasuredProfile:
    return measured_profile(
        folder,
        COST,
        block_size=16,
        max_num_batched_tokens=64,
        max_num_seqs=4,
        max_model_len=512,
        num_blocks=40,
    )


def test_measured_twin_reproduces_the_profiled_engine(model: ModelSpec, tmp_path: Path) -> None:
    assert model.folder is not None
    path = tmp_path / "p.json"
    dump_profile(_measured(model.folder), path)
    options = twin_options(path, tokenizer=TOK)
    assert options.cost == COST and options.dtype == "float32"
    assert options.settings == TwinSettings(
        block_size=16, num_blocks=40, max_model_len=512, max_num_seqs=4, max_num_batched_tokens=64
    )

    async def main() -> float:
        engine = TwinEngine(options)
        _, stats = await collect(engine, forced(range(100, 200), (1, 2, 3)))
        await engine.aclose()
        return stats.finish_t - stats.arrival_t

    assert run_virtual(main) == pytest.approx(0.079 + 0.046 + 0.012 + 0.012)


def test_importing_the_twin_loads_no_vllm() -> None:
    code = (
        "import sys, agentrt.engine._twin, agentrt.engine._twin_build, agentrt.cli._replay_twin;"
        "print(sorted(m for m in ('vllm', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_twin_clock_is_the_loop_clock(model: ModelSpec) -> None:
    async def main() -> float:
        engine = make_twin(model)
        t0 = now()
        await collect(engine, forced(range(100, 110), (1,)))
        await engine.aclose()
        return now() - t0

    assert run_virtual(main) == pytest.approx(0.01 + 0.010 + 0.005)
