"""ScriptedEngine's prefix cache: the same eviction order as the tier-aware scheduler."""

from __future__ import annotations

from agentrt.engine import CacheHint, SessionId, Tier
from agentrt.engine._sim_cache import SimPrefixCache

BS = 4


def seq(tag: int, blocks: int = 1) -> list[int]:
    return [tag * 100 + i for i in range(blocks * BS)]


def cache_one(
    c: SimPrefixCache,
    tokens: list[int],
    tier: Tier | None,
    *,
    now: float = 0.0,
    ttl: float | None = None,
    session: str | None = None,
) -> None:
    a = c.allocate(tokens, None, len(tokens) + 1, now)
    hints = [] if tier is None else [CacheHint(0, len(tokens), tier, ttl, base=Tier.DEFAULT)]
    c.free(a, hints, SessionId(session) if session else None, now_s=now)
    c.check_integrity()


def present(c: SimPrefixCache, tokens: list[int]) -> bool:
    return c.cached_prefix_blocks(c.block_keys(tokens, None)) > 0


def test_lowest_tier_goes_first_then_lru_within_a_tier() -> None:
    c = SimPrefixCache(BS, capacity=3)
    cache_one(c, seq(1), Tier.SYSTEM)
    cache_one(c, seq(2), Tier.TOOL_OUTPUT)
    cache_one(c, seq(3), Tier.TOOL_OUTPUT)
    cache_one(c, seq(4), None)  # evicts the older TOOL_OUTPUT block (2)
    assert [present(c, seq(i)) for i in (1, 2, 3, 4)] == [True, False, True, True]
    cache_one(c, seq(5), None)  # evicts SCRATCH 4 before TOOL_OUTPUT 3
    assert [present(c, seq(i)) for i in (1, 3, 4, 5)] == [True, True, False, True]


def test_without_tiers_the_order_is_plain_lru() -> None:
    c = SimPrefixCache(BS, capacity=2, use_tiers=False)
    cache_one(c, seq(1), Tier.SYSTEM)
    cache_one(c, seq(2), None)
    cache_one(c, seq(3), None)
    assert [present(c, seq(i)) for i in (1, 2, 3)] == [False, True, True]


def test_split_pending_expires_to_its_base_tier() -> None:
    c = SimPrefixCache(BS, capacity=2)
    cache_one(c, seq(1), Tier.SPLIT_PENDING, now=0.0, ttl=1.0)
    cache_one(c, seq(2), Tier.USER_QUERY, now=0.5)
    cache_one(c, seq(3), None, now=0.6)  # pending outranks USER_QUERY: block 2 goes
    assert present(c, seq(1)) and not present(c, seq(2))
    cache_one(c, seq(4), Tier.USER_QUERY, now=5.0)  # evicts scratch 3
    cache_one(c, seq(5), None, now=5.1)  # 1 expired to DEFAULT (< USER_QUERY): it goes
    assert not present(c, seq(1)) and present(c, seq(4))


def test_release_demotes_all_but_system() -> None:
    c = SimPrefixCache(BS, capacity=3)
    cache_one(c, seq(1), Tier.SYSTEM, session="run")
    cache_one(c, seq(2), Tier.TOOL_OUTPUT, session="run")
    cache_one(c, seq(3), None)
    c.release(SessionId("run"))
    cache_one(c, seq(4), None)  # 2 is SCRATCH now and older than 3
    assert [present(c, seq(i)) for i in (1, 2, 3, 4)] == [True, False, True, True]


def test_blocks_in_use_are_never_evicted() -> None:
    c = SimPrefixCache(BS, capacity=2)
    held = c.allocate(seq(1), None, BS + 1)
    cache_one(c, seq(2), None)
    cache_one(c, seq(3), None)
    assert present(c, seq(1))
    c.free(held, [], None)
    c.check_integrity()


def test_fully_cached_prompt_hits_one_block_less() -> None:
    c = SimPrefixCache(BS, capacity=None)
    cache_one(c, seq(1, blocks=2), None)
    a = c.allocate(seq(1, blocks=2), None, 2 * BS)
    assert a.cached_tokens == BS  # vLLM recomputes the last prompt token
