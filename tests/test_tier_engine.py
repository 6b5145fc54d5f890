"""Cache tiers on the real engine: hinted context survives a flood that LRU lets evict it."""

from __future__ import annotations

import random

import pytest

from agentrt.engine import CacheHint, Engine, GenerateRequest, SamplingOptions, SessionId, Tier

pytestmark = [pytest.mark.anyio, pytest.mark.engine]


def tokens(n: int, rng: random.Random) -> tuple[int, ...]:
    return tuple(rng.randrange(1000, 40000) for _ in range(n))


async def cached_after_flood(engine: Engine, *, hinted: bool, seed: int) -> int:
    """Cache a system prefix + run context, flood the cache, then ask again.

    Returns the cached tokens of the follow-up (system prefix, then context, then new tokens).
    """
    rng = random.Random(seed)
    bs = engine.info.block_size
    # Start cold: blocks other tests left labelled would otherwise compete for the cache.
    await engine.reset_prefix_cache()  # type: ignore[attr-defined]
    system, context = tokens(2 * bs, rng), tokens(2 * bs, rng)
    prompt = system + context + tokens(5, rng)
    hints = (
        (
            CacheHint(0, len(system), Tier.SYSTEM),
            CacheHint(len(system), len(system) + len(context), Tier.TOOL_OUTPUT),
        )
        if hinted
        else ()
    )
    session = SessionId(f"tier-test-{seed}")
    one = SamplingOptions(max_tokens=1)
    async for _ in engine.generate(GenerateRequest(prompt, one, hints=hints, session=session)):
        pass
    stats = await engine.stats()
    # Unrelated, unhinted prompts: together more than the whole cache.
    for _ in range(stats.num_blocks // 3 + 2):
        async for _ in engine.generate(GenerateRequest(tokens(3 * bs, rng), one)):
            pass
    cached = -1
    probe = system + context + tokens(9, rng)
    async for d in engine.generate(GenerateRequest(probe, one, hints=hints, session=session)):
        if d.stats is not None:
            cached = d.stats.cached_tokens
    return cached


async def check_tiers_protect_context(engine: Engine) -> None:
    bs = engine.info.block_size
    lru = await cached_after_flood(engine, hinted=False, seed=1)
    tiered = await cached_after_flood(engine, hinted=True, seed=2)
    assert lru == 0, "under plain LRU the flood evicts the whole context"
    assert tiered == 4 * bs, "with tiers the system prefix and the run's context stay cached"


async def test_system_prefix_and_run_context_survive_a_flood_in_process(
    vllm_engine: Engine,
) -> None:
    await check_tiers_protect_context(vllm_engine)


async def test_tier_stats_are_reported(vllm_engine: Engine) -> None:
    stats = await vllm_engine.stats()
    assert set(stats.tiers) == {t.name for t in Tier}
    assert stats.tiers["SCRATCH"].evictions > 0


async def test_system_prefix_and_run_context_survive_a_flood_over_http(http_engine: Engine) -> None:
    assert http_engine.info.supports_hints
    await check_tiers_protect_context(http_engine)
