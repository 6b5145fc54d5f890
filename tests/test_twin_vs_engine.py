"""The twin against the real embedded engine: the same request sequence gives the same
prefix-cache hits, block for block, and the same per-tier cache contents.

Requests are sent one at a time (each finishes before the next starts), so the real
engine's cache decisions do not depend on timing; the cache is small enough (96 MiB:
16 blocks of 128 tokens) that eviction order decides what hits.
"""

from __future__ import annotations

import pytest

from agentrt.engine import (
    CacheHint,
    Engine,
    GenerateRequest,
    PrefillRequest,
    SamplingOptions,
    SessionId,
    Tier,
    VLLMEngine,
)
from agentrt.engine._twin import TwinEngine
from agentrt.engine._twin_build import twin_options
from agentrt.engine._twin_cost import LinearStepCost
from agentrt.engine._twin_measured import describe_vllm_engine
from agentrt.engine._twin_profile import FitQuality, MeasuredProfile

pytestmark = [pytest.mark.engine, pytest.mark.anyio]


def twin_of(engine: VLLMEngine) -> TwinEngine:
    """The twin of a measured profile of ``engine`` (its exact settings), instant steps."""
    model, defaults, _ = describe_vllm_engine(engine)
    profile = MeasuredProfile(
        name="test",
        model=model,
        engine=defaults,
        coefficients=LinearStepCost().as_dict(),
        fit=FitQuality(samples=0, r2=1.0, median_abs_rel_error=0.0),
    )
    return TwinEngine(twin_options(profile, tokenizer=engine.tokenizer))


def fresh(start: int, n: int) -> tuple[int, ...]:
    return tuple(1000 + (start + i) % 30000 for i in range(n))


async def workload(engine: Engine) -> list[int]:
    """Cached tokens of every call: shared system prompt, runs of several calls, pending
    splits, releases, and more distinct context than the cache holds."""
    system = fresh(0, 300)
    cached: list[int] = []
    for i in range(10):
        session = SessionId(f"run-{i % 3}")
        query = fresh(1000 + 700 * i, 150 + 61 * i)
        prompt = system + query
        hints = (CacheHint(0, 300, Tier.SYSTEM), CacheHint(300, len(prompt), Tier.USER_QUERY))
        out = fresh(50_000 + i, 3)
        req = GenerateRequest(
            prompt, SamplingOptions(max_tokens=3), hints=hints, session=session, forced_output=out
        )
        stats = None
        async for delta in engine.generate(req):
            stats = delta.stats or stats
        assert stats is not None and stats.finish_reason != "error"
        cached.append(stats.cached_tokens)
        if i % 3 == 1:  # the run calls tools: its next prompt's first part waits in the cache
            split = prompt + out + fresh(90_000 + i, 40)
            pending = CacheHint(0, len(split), Tier.SPLIT_PENDING, ttl_s=600.0, base=Tier.DEFAULT)
            stats = await engine.prefill(PrefillRequest(split, (pending,), session))
            cached.append(stats.cached_tokens)
        if i % 4 == 3:
            await engine.release(SessionId(f"run-{(i + 1) % 3}"))
    return cached


def tier_blocks(tiers: dict[str, object]) -> dict[str, int]:
    return {name: s.cached_blocks for name, s in tiers.items()}  # type: ignore[attr-defined]


async def test_twin_hits_the_same_blocks_as_the_real_engine(vllm_engine: VLLMEngine) -> None:
    await vllm_engine.reset_prefix_cache()
    twin = twin_of(vllm_engine)
    try:
        before = await vllm_engine.stats()
        real_cached = await workload(vllm_engine)
        after = await vllm_engine.stats()
        twin_cached = await workload(twin)
        twin_stats = await twin.stats()
    finally:
        await twin.aclose()
    assert twin_cached == real_cached
    # The test means something: runs hit beyond the shared system prompt (two blocks), and
    # the cache was full enough to evict.
    assert max(real_cached) > 256
    evicted = sum(s.evictions for s in after.tiers.values()) - sum(
        s.evictions for s in before.tiers.values()
    )
    assert evicted > 0
    assert (
        twin_stats.prefix_cache_queries == after.prefix_cache_queries - before.prefix_cache_queries
    )
    assert twin_stats.prefix_cache_hits == after.prefix_cache_hits - before.prefix_cache_hits
    assert tier_blocks(dict(twin_stats.tiers)) == tier_blocks(dict(after.tiers))
    assert twin_stats.num_blocks == after.num_blocks
