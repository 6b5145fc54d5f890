"""The tiered free-block queue inside a real vLLM BlockPool: exact eviction orders.

Blocks are numbered as the pool hands them out; with 10 blocks, block 0 is vLLM's null
block and 1..9 are usable, so three 3-block prompts fill the pool.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vllm import SamplingParams
from vllm.utils.hashing import sha256
from vllm.v1.core.block_pool import BlockPool
from vllm.v1.core.kv_cache_utils import (
    FreeKVCacheBlockQueue,
    KVCacheBlock,
    get_request_block_hasher,
    init_none_hash,
)
from vllm.v1.request import Request

from agentrt.engine import CacheHint, Tier
from agentrt.engine._tier_labels import BlockLabel, block_labels
from agentrt.engine._tier_queue import TieredFreeBlockQueue

BS = 4
init_none_hash(sha256)
_hasher = get_request_block_hasher(BS, sha256)
_ids = itertools.count()


class Clock:
    """A clock the test moves by hand, so TTLs expire without sleeping."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_pool(
    num_blocks: int = 10,
    *,
    clock: Clock | None = None,
    use_tiers: bool = True,
    cap: int = 9,
    live_ttl_s: float = 120.0,
) -> tuple[BlockPool, TieredFreeBlockQueue[KVCacheBlock]]:
    pool = BlockPool(num_gpu_blocks=num_blocks, enable_caching=True, hash_block_size=BS)
    queue = TieredFreeBlockQueue.replace_in(
        pool, use_tiers=use_tiers, pending_cap=cap, live_ttl_s=live_ttl_s, clock=clock or Clock()
    )
    return pool, queue


def request(tokens: Sequence[int]) -> Request:
    return Request(
        f"req-{next(_ids)}", list(tokens), SamplingParams(max_tokens=1), None, block_hasher=_hasher
    )


def prefill(pool: BlockPool, n: int) -> list[KVCacheBlock]:
    """Allocate ``n`` blocks and cache them under a fresh prompt, as a finished prefill does."""
    base = 1000 * next(_ids)
    blocks = pool.get_new_blocks(n)
    pool.cache_full_blocks(request(range(base, base + n * BS)), blocks, 0, n, BS, 0)
    return blocks


def label(
    queue: TieredFreeBlockQueue[KVCacheBlock],
    blocks: Sequence[KVCacheBlock],
    lab: BlockLabel,
    session: str | None = None,
) -> None:
    for b in blocks:
        queue.label(b.block_id, lab, session)


def free(pool: BlockPool, blocks: Sequence[KVCacheBlock]) -> None:
    pool.free_blocks(reversed(blocks))  # as vLLM frees a request: tail block first


def order(queue: TieredFreeBlockQueue[KVCacheBlock]) -> list[int]:
    return [b.block_id for b in queue.get_all_free_blocks()]


def evict_all(pool: BlockPool) -> list[int]:
    return [b.block_id for b in pool.get_new_blocks(pool.get_num_free_blocks())]


def test_fresh_pool_hands_out_blocks_in_id_order_like_vllm() -> None:
    pool, queue = make_pool()
    assert order(queue) == list(range(1, 10))
    assert [b.block_id for b in pool.get_new_blocks(3)] == [1, 2, 3]
    queue.check_integrity()


def test_lowest_tier_is_evicted_first() -> None:
    pool, queue = make_pool()
    system, plain, tools = prefill(pool, 3), prefill(pool, 3), prefill(pool, 3)
    label(queue, system, BlockLabel(Tier.SYSTEM))
    label(queue, tools, BlockLabel(Tier.TOOL_OUTPUT))
    for blocks in (system, plain, tools):
        free(pool, blocks)
    queue.check_integrity()
    assert evict_all(pool) == [6, 5, 4, 9, 8, 7, 3, 2, 1]


def three_runs_freed_b_a_c(tier: Tier, live_ttl_s: float = 120.0) -> BlockPool:
    """Runs a (blocks 1-3), b (4-6) and c (7-9), all in ``tier``, freed in the order b, a, c."""
    pool, queue = make_pool(live_ttl_s=live_ttl_s)
    a, b, c = prefill(pool, 3), prefill(pool, 3), prefill(pool, 3)
    for blocks in (a, b, c):
        label(queue, blocks, BlockLabel(tier))
    for blocks in (b, a, c):
        free(pool, blocks)
    queue.check_integrity()
    return pool


@pytest.mark.parametrize("tier", [Tier.SCRATCH, Tier.RESPONSE, Tier.SYSTEM])
def test_lru_within_a_tier_that_holds_no_waiting_run(tier: Tier) -> None:
    assert evict_all(three_runs_freed_b_a_c(tier)) == [6, 5, 4, 3, 2, 1, 9, 8, 7]


@pytest.mark.parametrize("tier", [Tier.DEFAULT, Tier.TOOL_OUTPUT, Tier.USER_QUERY])
def test_live_tier_evicts_the_newest_release_first_tail_block_first(tier: Tier) -> None:
    # b waits longest for its tools, so it returns first: LRU would evict it first.
    assert evict_all(three_runs_freed_b_a_c(tier)) == [9, 8, 7, 3, 2, 1, 6, 5, 4]


def test_live_blocks_past_their_ttl_go_first_least_recently_freed_first() -> None:
    clock = Clock()
    pool, queue = make_pool(clock=clock, live_ttl_s=30.0)
    a, b, c = prefill(pool, 3), prefill(pool, 3), prefill(pool, 3)
    for blocks in (a, b, c):
        label(queue, blocks, BlockLabel(Tier.DEFAULT))
    free(pool, b)
    clock.now += 10.0
    free(pool, a)
    clock.now += 10.0
    free(pool, c)
    assert order(queue) == [9, 8, 7, 3, 2, 1, 6, 5, 4]
    clock.now += 10.0  # b has waited 30 s: a run that is not coming back goes first
    assert order(queue) == [6, 5, 4, 9, 8, 7, 3, 2, 1]
    clock.now += 10.0  # a too; the stale ones among themselves: LRU
    assert order(queue) == [6, 5, 4, 3, 2, 1, 9, 8, 7]
    queue.check_integrity()
    # b comes back: a prefix hit takes its first block; freed again, it is the newest.
    pool.touch(b[:1])
    label(queue, b[:1], BlockLabel(Tier.DEFAULT))
    free(pool, b[:1])
    assert order(queue) == [6, 5, 3, 2, 1, 4, 9, 8, 7]
    queue.check_integrity()
    assert evict_all(pool) == [6, 5, 3, 2, 1, 4, 9, 8, 7]


def test_live_ttl_zero_is_lru_in_every_tier() -> None:
    pool = three_runs_freed_b_a_c(Tier.TOOL_OUTPUT, live_ttl_s=0.0)
    assert evict_all(pool) == [6, 5, 4, 3, 2, 1, 9, 8, 7]


def test_negative_live_ttl_is_refused() -> None:
    with pytest.raises(ValueError, match="live_ttl_s"):
        make_pool(live_ttl_s=-1.0)


def test_split_pending_expires_to_its_base_tier_at_its_lru_position() -> None:
    clock = Clock()
    pool, queue = make_pool(clock=clock, live_ttl_s=0.0)
    pending, query, tools = prefill(pool, 3), prefill(pool, 3), prefill(pool, 3)
    label(queue, pending, BlockLabel(Tier.SPLIT_PENDING, base=Tier.USER_QUERY, ttl_s=5.0))
    label(queue, query, BlockLabel(Tier.USER_QUERY))
    label(queue, tools, BlockLabel(Tier.TOOL_OUTPUT))
    for blocks in (pending, query, tools):
        free(pool, blocks)
    assert order(queue) == [9, 8, 7, 6, 5, 4, 3, 2, 1]
    clock.now = 104.999
    assert order(queue) == [9, 8, 7, 6, 5, 4, 3, 2, 1]
    clock.now = 105.0
    # Freed before the query blocks, so first within USER_QUERY once it falls back.
    assert order(queue) == [9, 8, 7, 3, 2, 1, 6, 5, 4]
    assert queue.num_pending == 0
    queue.check_integrity()
    assert evict_all(pool) == [9, 8, 7, 3, 2, 1, 6, 5, 4]


def test_release_demotes_a_runs_blocks_except_those_a_live_run_shares() -> None:
    """A system prompt keeps SYSTEM only while a live run uses it: released system
    blocks of finished conversations must not outrank live runs' context."""
    pool, queue = make_pool()
    system, query, tools = prefill(pool, 2), prefill(pool, 2), prefill(pool, 2)
    other = prefill(pool, 3)
    label(queue, system, BlockLabel(Tier.SYSTEM), "run-1")
    label(queue, query, BlockLabel(Tier.USER_QUERY), "run-1")
    label(queue, tools, BlockLabel(Tier.TOOL_OUTPUT), "run-1")
    label(queue, other, BlockLabel(Tier.DEFAULT), "run-2")
    queue.label(system[0].block_id, BlockLabel(Tier.SYSTEM), "run-2")  # shared with run-2
    queue.label(query[0].block_id, BlockLabel(Tier.USER_QUERY), "run-2")  # shared with run-2
    for blocks in (system, query, tools, other):
        free(pool, blocks)
    assert order(queue) == [9, 8, 7, 6, 5, 4, 3, 2, 1]
    assert queue.release("run-1") == 4
    queue.check_integrity()
    assert [queue.tier_of(i) for i in range(1, 7)] == [
        Tier.SYSTEM,
        Tier.SCRATCH,
        Tier.USER_QUERY,
        Tier.SCRATCH,
        Tier.SCRATCH,
        Tier.SCRATCH,
    ]
    # Demoted blocks keep their LRU position among the SCRATCH ones; the unshared system
    # block goes before run-2's live context.
    assert evict_all(pool) == [2, 4, 6, 5, 9, 8, 7, 3, 1]


def test_release_of_an_unknown_session_changes_nothing() -> None:
    pool, queue = make_pool()
    blocks = prefill(pool, 3)
    label(queue, blocks, BlockLabel(Tier.USER_QUERY), "run-1")
    free(pool, blocks)
    assert queue.release("never-seen") == 0
    assert [queue.tier_of(b.block_id) for b in blocks] == [Tier.USER_QUERY] * 3


def test_pending_cap_gives_the_base_tier_beyond_it() -> None:
    clock = Clock()
    pool, queue = make_pool(clock=clock, cap=4)
    a, b = prefill(pool, 3), prefill(pool, 3)
    pending = BlockLabel(Tier.SPLIT_PENDING, base=Tier.DEFAULT, ttl_s=10.0)
    label(queue, a, pending)
    label(queue, b, pending)
    assert queue.num_pending == 4
    assert [queue.tier_of(x.block_id) for x in a + b] == [Tier.SPLIT_PENDING] * 4 + [
        Tier.DEFAULT
    ] * 2
    queue.check_integrity()
    clock.now += 10.0
    assert queue.num_pending == 0
    c = prefill(pool, 3)
    label(queue, c, pending)
    assert [queue.tier_of(x.block_id) for x in c] == [Tier.SPLIT_PENDING] * 3


@pytest.mark.parametrize("first", [Tier.SYSTEM, Tier.DEFAULT])
def test_block_keeps_the_highest_label_of_its_holders(first: Tier) -> None:
    pool, queue = make_pool()
    blocks = prefill(pool, 2)
    pool.touch(blocks)  # a second request holds them too
    label(queue, blocks, BlockLabel(first))
    pool.free_blocks(blocks)  # the first holder finishes: still in use by the second
    label(queue, blocks, BlockLabel(Tier.DEFAULT if first == Tier.SYSTEM else Tier.SYSTEM))
    free(pool, blocks)
    assert [queue.tier_of(b.block_id) for b in blocks] == [Tier.SYSTEM] * 2


def test_prefix_hit_starts_a_new_label_period_and_free_reapplies_labels() -> None:
    pool, queue = make_pool()
    blocks = prefill(pool, 3)
    label(queue, blocks, BlockLabel(Tier.SYSTEM))
    free(pool, blocks)
    pool.touch(blocks)  # a new request hits the cached prefix
    assert [queue.tier_of(b.block_id) for b in blocks] == [Tier.SCRATCH] * 3
    label(queue, blocks, BlockLabel(Tier.USER_QUERY))
    free(pool, blocks)
    assert [queue.tier_of(b.block_id) for b in blocks] == [Tier.USER_QUERY] * 3
    queue.check_integrity()


def test_uncached_blocks_go_to_the_front_without_labels() -> None:
    pool, queue = make_pool()
    cached = prefill(pool, 3)
    scratch = pool.get_new_blocks(2)  # never filled: no block hash
    label(queue, cached, BlockLabel(Tier.SCRATCH))
    label(queue, scratch, BlockLabel(Tier.SYSTEM))
    free(pool, cached)
    free(pool, scratch)
    assert order(queue)[:4] == [5, 4, 6, 7]
    assert queue.tier_of(4) == Tier.SCRATCH


def test_stats_count_cached_blocks_evictions_and_hits_by_tier() -> None:
    pool, queue = make_pool()
    system, tools = prefill(pool, 3), prefill(pool, 3)
    label(queue, system, BlockLabel(Tier.SYSTEM))
    label(queue, tools, BlockLabel(Tier.TOOL_OUTPUT))
    free(pool, system)
    free(pool, tools)
    pool.touch(system[:2])
    pool.get_new_blocks(5)  # 3 never-used blocks, then 2 cached TOOL_OUTPUT ones
    stats = queue.stats()
    assert stats["SYSTEM"].hits == 2 and stats["SYSTEM"].cached_blocks == 1
    assert stats["TOOL_OUTPUT"].evictions == 2 and stats["TOOL_OUTPUT"].cached_blocks == 1
    assert sum(s.evictions for s in stats.values()) == 2


def test_tiers_off_ignores_labels() -> None:
    pool, queue = make_pool(use_tiers=False)
    a, b = prefill(pool, 3), prefill(pool, 3)
    label(queue, a, BlockLabel(Tier.SYSTEM), "run-1")
    free(pool, a)
    free(pool, b)
    assert order(queue) == [7, 8, 9, 3, 2, 1, 6, 5, 4]
    queue.check_integrity()


def test_block_takes_the_highest_tier_of_overlapping_hints() -> None:
    hints = [
        CacheHint(0, 6, Tier.SYSTEM),
        CacheHint(6, 12, Tier.USER_QUERY),
        CacheHint(10, 14, Tier.TOOL_OUTPUT),
    ]
    got = block_labels(hints, block_size=4, num_blocks=5)
    assert [lab.tier if lab else None for lab in got] == [
        Tier.SYSTEM,
        Tier.SYSTEM,
        Tier.USER_QUERY,
        Tier.TOOL_OUTPUT,
        None,
    ]


def test_hint_ending_on_a_block_boundary_does_not_touch_the_next_block() -> None:
    got = block_labels([CacheHint(4, 8, Tier.SYSTEM)], block_size=4, num_blocks=3)
    assert got == [None, BlockLabel(Tier.SYSTEM), None]


def test_pending_block_falls_back_to_the_highest_other_hint() -> None:
    hints = [
        CacheHint(0, 8, Tier.SYSTEM),
        CacheHint(0, 12, Tier.SPLIT_PENDING, ttl_s=3.0, base=Tier.DEFAULT),
    ]
    assert block_labels(hints, block_size=4, num_blocks=3) == [
        BlockLabel(Tier.SPLIT_PENDING, Tier.SYSTEM, 3.0),
        BlockLabel(Tier.SPLIT_PENDING, Tier.SYSTEM, 3.0),
        BlockLabel(Tier.SPLIT_PENDING, Tier.DEFAULT, 3.0),
    ]


# -- identity with vLLM's own queue when hints are off -----------------------------------

N = 12


@st.composite
def queue_ops(draw: st.DrawFn) -> list[tuple[str, int, list[int]]]:
    """Random operations; the indexes are resolved against the live free/used sets."""
    kinds = st.sampled_from(
        ["popleft", "popleft_n", "remove", "append", "append_n", "prepend_n", "label", "release"]
    )
    return draw(
        st.lists(
            st.tuples(kinds, st.integers(0, 6), st.lists(st.integers(0, 100), max_size=4)),
            max_size=60,
        )
    )


@pytest.mark.parametrize("use_tiers", [True, False], ids=["no-labels", "tiers-off"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=queue_ops())
def test_queue_matches_vllm_free_queue_when_hints_are_off(
    use_tiers: bool, ops: list[tuple[str, int, list[int]]]
) -> None:
    ref = FreeKVCacheBlockQueue([KVCacheBlock(i) for i in range(N)])
    ours: TieredFreeBlockQueue[KVCacheBlock] = TieredFreeBlockQueue(
        [KVCacheBlock(i) for i in range(N)], use_tiers=use_tiers, pending_cap=N, clock=Clock()
    )
    blocks = {b.block_id: b for b in ours.get_all_free_blocks()}
    ref_blocks = {b.block_id: b for b in ref.get_all_free_blocks()}
    used: list[int] = []
    for kind, k, picks in ops:
        free_ids = [b.block_id for b in ref.get_all_free_blocks()]
        if kind == "popleft" and free_ids:
            got = ours.popleft().block_id
            assert got == ref.popleft().block_id
            used.append(got)
        elif kind == "popleft_n" and k <= len(free_ids):
            got_ids = [b.block_id for b in ours.popleft_n(k)]
            assert got_ids == [b.block_id for b in ref.popleft_n(k)]
            used.extend(got_ids)
        elif kind == "remove" and free_ids:
            bid = free_ids[k % len(free_ids)]
            ours.remove(blocks[bid])
            ref.remove(ref_blocks[bid])
            used.append(bid)
        elif kind in ("append", "append_n", "prepend_n") and used:
            chosen = list(dict.fromkeys(used[p % len(used)] for p in picks or [k]))
            if kind == "append":
                chosen = chosen[:1]
            for bid in chosen:
                used.remove(bid)
            getattr(ours, "append_n" if kind == "append" else kind)([blocks[i] for i in chosen])
            getattr(ref, "append_n" if kind == "append" else kind)([ref_blocks[i] for i in chosen])
        elif kind == "label" and not use_tiers:
            tier = Tier(k)
            for p in picks:
                ours.label(p % N, BlockLabel(tier, Tier.DEFAULT, 1.0), f"s{k % 2}")
        elif kind == "release" and not use_tiers:
            ours.release(f"s{k % 2}")
        assert [b.block_id for b in ours.get_all_free_blocks()] == [
            b.block_id for b in ref.get_all_free_blocks()
        ]
        assert ours.num_free_blocks == ref.num_free_blocks
        ours.check_integrity()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=queue_ops(), ticks=st.lists(st.sampled_from([0.0, 0.0, 4.0, 11.0]), min_size=60))
def test_pops_follow_the_reported_order_with_labels_and_aging(
    ops: list[tuple[str, int, list[int]]], ticks: list[float]
) -> None:
    # With live tiers, stale entries and aging the heaps are lazy; the block popleft gives
    # must still be the first of get_all_free_blocks (the order the docstring states).
    clock = Clock()
    queue: TieredFreeBlockQueue[KVCacheBlock] = TieredFreeBlockQueue(
        [KVCacheBlock(i) for i in range(N)], pending_cap=4, live_ttl_s=10.0, clock=clock
    )
    blocks = {b.block_id: b for b in queue.get_all_free_blocks()}
    used: list[int] = []
    for (kind, k, picks), tick in zip(ops, ticks, strict=False):
        clock.now += tick
        free_ids = [b.block_id for b in queue.get_all_free_blocks()]
        if kind in ("popleft", "popleft_n") and free_ids:
            n = 1 if kind == "popleft" else min(k, len(free_ids))
            got = [b.block_id for b in queue.popleft_n(n)]
            assert got == free_ids[:n]
            used.extend(got)
        elif kind == "remove" and free_ids:
            bid = free_ids[k % len(free_ids)]
            queue.remove(blocks[bid])
            used.append(bid)
        elif kind in ("append", "append_n", "prepend_n") and used:
            chosen = list(dict.fromkeys(used[p % len(used)] for p in picks or [k]))
            for bid in chosen:
                used.remove(bid)
            getattr(queue, "prepend_n" if kind == "prepend_n" else "append_n")(
                [blocks[i] for i in chosen]
            )
        elif kind == "label":
            for p in picks:
                queue.label(p % N, BlockLabel(Tier(k), Tier.DEFAULT, 5.0), f"s{k % 2}")
        elif kind == "release":
            queue.release(f"s{k % 2}")
        queue.check_integrity()


@st.composite
def pool_ops(draw: st.DrawFn) -> list[tuple[str, int, int, int]]:
    """Allocate prompts that share prefixes (so prefix hits touch free blocks) and free them."""
    step = st.tuples(
        st.sampled_from(["alloc", "alloc", "free", "free_oldest"]),
        st.integers(0, 3),  # which shared prefix
        st.integers(1, 4),  # full blocks in the prompt
        st.integers(0, BS - 1),  # tokens in a trailing partial block
    )
    return draw(st.lists(step, max_size=40))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=pool_ops())
def test_block_pool_evicts_like_vllm_without_hints(ops: list[tuple[str, int, int, int]]) -> None:
    ref = BlockPool(num_gpu_blocks=N, enable_caching=True, hash_block_size=BS)
    pool, queue = make_pool(N)
    held: list[tuple[list[KVCacheBlock], list[KVCacheBlock]]] = []
    for n, (kind, prefix, full, tail) in enumerate(ops):
        if kind == "alloc":
            tokens = [prefix] * (BS * (full - 1)) + [n] * BS + [n + 1] * tail
            pair = []
            for p in (ref, pool):
                got = allocate(p, tokens)
                pair.append(got)
            if pair[0] is None:
                assert pair[1] is None
                continue
            assert [b.block_id for b in pair[0]] == [b.block_id for b in pair[1]]
            held.append((pair[0], pair[1]))
        elif held:
            ref_blocks, our_blocks = held.pop(0 if kind == "free_oldest" else prefix % len(held))
            free(ref, ref_blocks)
            free(pool, our_blocks)
        assert order(queue) == [b.block_id for b in ref.free_block_queue.get_all_free_blocks()]
        queue.check_integrity()


def allocate(pool: BlockPool, tokens: list[int]) -> list[KVCacheBlock] | None:
    """vLLM's allocation path in miniature: hit the cached prefix, touch it, take new blocks."""
    req = request(tokens)
    hits: list[KVCacheBlock] = []
    for h in req.block_hashes[: (len(tokens) - 1) // BS]:
        found = pool.get_cached_block(h, [0])
        if found is None:
            break
        hits.append(found[0])
    need = -(-len(tokens) // BS) - len(hits)
    if need > pool.get_num_free_blocks() - sum(1 for b in hits if b.ref_cnt == 0):
        return None
    pool.touch(hits)
    blocks = hits + pool.get_new_blocks(need)
    pool.cache_full_blocks(req, blocks, len(hits), len(tokens) // BS, BS, 0)
    return blocks
