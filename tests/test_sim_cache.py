"""ScriptedEngine's KV cache: vLLM's block semantics over the tier policy's own queue.

Runs without vLLM; ``test_sim_cache_vs_vllm`` checks the same behaviour block for block
against vLLM's real scheduler.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from agentrt.engine import CacheHint, SessionId, Tier
from agentrt.engine._sim_cache import SimKVCache, SimSequence

BS = 4
SAMPLED = 7


class Clock:
    """A clock the test moves by hand, so TTLs expire without sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def seq(tag: int, blocks: int = 1) -> list[int]:
    return [tag * 100 + i for i in range(blocks * BS)]


def start(c: SimKVCache, tokens: Sequence[int]) -> SimSequence:
    """Admit a request and compute its prompt (what one prefill step does)."""
    s = c.new_sequence(tokens, None)
    hits = c.lookup(s)
    assert c.allocate(s, len(tokens) - len(hits) * BS, hits)
    c.append_token(s, SAMPLED)
    return s


def cache_one(
    c: SimKVCache,
    tokens: list[int],
    tier: Tier | None,
    *,
    ttl: float | None = None,
    session: str | None = None,
) -> SimSequence:
    """A one-token request over ``tokens``, hinted ``tier`` over the whole prompt."""
    s = start(c, tokens)
    hints = [] if tier is None else [CacheHint(0, len(tokens), tier, ttl, base=Tier.DEFAULT)]
    c.free(s, hints, SessionId(session) if session else None)
    c.check_integrity()
    return s


def present(c: SimKVCache, tokens: list[int]) -> bool:
    """Whether the first block of ``tokens`` would be a prefix hit."""
    return bool(c.lookup(c.new_sequence([*tokens, 0], None)))


@pytest.mark.parametrize(
    ("tier", "evicted"),
    [(Tier.RESPONSE, 2), (Tier.TOOL_OUTPUT, 3)],
    ids=["lru-in-a-finished-tier", "newest-first-in-a-live-tier"],
)
def test_lowest_tier_goes_first_then_by_recency_within_a_tier(tier: Tier, evicted: int) -> None:
    c = SimKVCache(BS, 3)
    cache_one(c, seq(1), Tier.SYSTEM)
    cache_one(c, seq(2), tier)
    cache_one(c, seq(3), tier)
    cache_one(c, seq(4), None)  # evicts one of the two blocks of ``tier``
    kept = 5 - evicted
    assert [present(c, seq(i)) for i in (1, evicted, kept, 4)] == [True, False, True, True]
    cache_one(c, seq(5), None)  # evicts SCRATCH 4 before the other block of ``tier``
    assert [present(c, seq(i)) for i in (1, kept, 4, 5)] == [True, True, False, True]
    assert c.tier_stats()[tier.name].evictions == 1
    assert c.tier_stats()["SCRATCH"].evictions == 1


def test_without_tiers_the_order_is_plain_lru() -> None:
    c = SimKVCache(BS, 2, use_tiers=False)
    cache_one(c, seq(1), Tier.SYSTEM)
    cache_one(c, seq(2), None)
    cache_one(c, seq(3), None)
    assert [present(c, seq(i)) for i in (1, 2, 3)] == [False, True, True]


def test_split_pending_expires_to_its_base_tier() -> None:
    clock = Clock()
    c = SimKVCache(BS, 2, clock=clock)
    cache_one(c, seq(1), Tier.SPLIT_PENDING, ttl=1.0)
    clock.now = 0.5
    cache_one(c, seq(2), Tier.USER_QUERY)
    clock.now = 0.6
    cache_one(c, seq(3), None)  # pending outranks USER_QUERY: block 2 goes
    assert present(c, seq(1)) and not present(c, seq(2))
    clock.now = 5.0
    cache_one(c, seq(4), Tier.USER_QUERY)  # evicts scratch 3
    clock.now = 5.1
    cache_one(c, seq(5), None)  # 1 expired to DEFAULT (< USER_QUERY): it goes
    assert not present(c, seq(1)) and present(c, seq(4))


def test_release_demotes_what_no_live_run_shares() -> None:
    c = SimKVCache(BS, 3)
    cache_one(c, seq(1), Tier.SYSTEM, session="run")
    cache_one(c, seq(2), Tier.TOOL_OUTPUT, session="run")
    cache_one(c, seq(3), None)
    assert c.release(SessionId("run")) == 2
    cache_one(c, seq(4), None)  # 1 and 2 are SCRATCH now; 1 is the oldest
    assert [present(c, seq(i)) for i in (1, 2, 3, 4)] == [False, True, True, True]


def test_blocks_in_use_are_never_evicted() -> None:
    c = SimKVCache(BS, 2)
    held = start(c, seq(1))
    cache_one(c, seq(2), None)
    cache_one(c, seq(3), None)
    assert present(c, seq(1)) and not present(c, seq(2))
    c.free(held)
    c.check_integrity()


def test_allocation_that_does_not_fit_changes_nothing() -> None:
    c = SimKVCache(BS, 2)
    held = start(c, seq(1))
    s = c.new_sequence(seq(2, blocks=2), None)
    assert not c.allocate(s, 2 * BS)
    assert s.blocks == [] and c.num_free == 1 and c.queries == BS
    c.free(held)
    c.check_integrity()


def test_fully_cached_prompt_hits_one_block_less() -> None:
    c = SimKVCache(BS, None)
    cache_one(c, seq(1, blocks=2), None)
    s = start(c, seq(1, blocks=2))
    assert s.cached_tokens == BS  # vLLM recomputes the last prompt token
    assert (c.queries, c.hits) == (4 * BS, BS)


def test_the_last_sampled_token_has_no_kv_yet() -> None:
    c = SimKVCache(BS, None)
    prompt = seq(1, blocks=2)[:-1]  # one token short of two blocks
    cache_one(c, prompt, None)  # its sampled token fills block 2, but was never computed
    assert len(c.lookup(c.new_sequence([*prompt, SAMPLED, 0], None))) == 1
    s = start(c, prompt)
    assert c.allocate(s, 1)  # a decode step computes the sampled token: block 2 is cached
    c.append_token(s, SAMPLED)
    c.free(s)
    assert len(c.lookup(c.new_sequence([*prompt, SAMPLED, 0], None))) == 2


def test_cache_salt_separates_identical_prompts() -> None:
    c = SimKVCache(BS, None)
    s = c.new_sequence(seq(1, blocks=2), "tenant-a")
    assert c.allocate(s, 2 * BS)
    c.free(s)
    assert c.lookup(c.new_sequence(seq(1, blocks=2), "tenant-b")) == []
    assert len(c.lookup(c.new_sequence(seq(1, blocks=2), "tenant-a"))) == 1


def test_identical_blocks_filled_side_by_side_are_both_kept() -> None:
    c = SimKVCache(BS, 6)
    prompt = seq(1, blocks=2)[:-2]  # block 0 full, block 1 two tokens short
    a, b = start(c, prompt), start(c, prompt)  # b hits a's block 0
    for s in (a, b):  # both decode two tokens: block 1 fills, alike, in each
        for _ in range(2):
            assert c.allocate(s, 1)
            c.append_token(s, SAMPLED)
    a1, b1 = a.blocks[1], b.blocks[1]
    assert a.blocks[0] is b.blocks[0] and a1 is not b1 and a1.block_hash == b1.block_hash
    c.free(a)
    c.free(b)
    assert c.lookup(c.new_sequence([*prompt, SAMPLED, SAMPLED, 0], None))[1] is a1
    c.check_integrity()


def test_an_unbounded_cache_never_evicts_and_reuses_uncached_blocks() -> None:
    c = SimKVCache(BS, None)
    for tag in range(1, 40):
        cache_one(c, [*seq(tag), tag], Tier.USER_QUERY)  # a full block and a partial one
    assert all(present(c, seq(tag)) for tag in range(1, 40))
    assert c.tier_stats()["USER_QUERY"].evictions == 0
    # 39 cached blocks, and one partial block recycled by every request.
    assert len(c.queue.get_all_free_blocks()) == 40


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_geometry_names_the_field(bad: int) -> None:
    with pytest.raises(ValueError, match="block_size"):
        SimKVCache(bad, None)
    with pytest.raises(ValueError, match="num_blocks"):
        SimKVCache(BS, bad)
