"""The free-block queue of the tier-aware scheduler: free KV blocks ordered by semantic tier.

It has the interface of vLLM's ``FreeKVCacheBlockQueue`` so it drops into a real
``BlockPool`` (and into ``ScriptedEngine``'s model-free cache); it imports nothing from
vLLM (blocks need only ``block_id`` and ``block_hash``). How request hints become block
labels is in ``_tier_labels``.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from ._tier_labels import BlockLabel
from ._types import Tier, TierStats


class FreeBlock(Protocol):
    """What the queue needs of a block (vLLM's ``KVCacheBlock`` fits)."""

    @property
    def block_id(self) -> int: ...

    @property
    def block_hash(self) -> object | None: ...


B = TypeVar("B", bound=FreeBlock)

_PENDING = Tier.SPLIT_PENDING

# Tiers of runs that are still going: their next request returns after its tools, so
# the run freed most recently returns last (Belady's choice when tool times are alike).
_LIVE_TIERS = frozenset({Tier.DEFAULT, Tier.TOOL_OUTPUT, Tier.USER_QUERY})

DEFAULT_PENDING_TTL_S = 60.0
"""Lifetime of a SPLIT_PENDING label whose hint names no ``ttl_s``."""

DEFAULT_LIVE_TTL_S = 120.0
"""How long a waiting run's freed context is evicted newest release first before it is stale."""

# Heap key within a tier: (0, seq, 0) for LRU order, (1, -group, seq) for a fresh live
# block (newest release first, its blocks in vLLM's order).
_Key = tuple[int, int, int]


@dataclass(slots=True)
class _State(Generic[B]):
    """Per-block bookkeeping. ``seq`` is set exactly while the block is in the queue."""

    block: B
    tier: Tier = Tier.SCRATCH
    base: Tier = Tier.SCRATCH
    expires_at: float | None = None
    gen: int = 0  # bumped on every relabel so stale expiry entries are skipped
    seq: int | None = None
    group: int = 0  # seq of the first block freed with it (one request's release)
    fresh: bool = False  # freed less than ``live_ttl_s`` ago
    sessions: set[str] = field(default_factory=set)


class TieredFreeBlockQueue(Generic[B]):
    """Free KV blocks in eviction order: lowest tier first, then by recency within the tier.

    Eviction order (``popleft``): lowest tier first. ``seq`` grows with every ``append``
    and shrinks with every ``prepend_n``; in SCRATCH, RESPONSE and SYSTEM the smallest
    ``seq`` goes first, exactly the order of vLLM's doubly linked free list (appended
    blocks at the back, prepended ones at the front). A block whose label changes while
    free keeps its ``seq``, i.e. its position among the blocks of its new tier.

    The live tiers (DEFAULT, TOOL_OUTPUT, USER_QUERY: context of runs waiting for their
    tools) evict differently, because LRU there loops: the oldest waiting run is the one
    whose tools return next, and its re-prefill evicts the next one to return. Among
    live blocks freed less than ``live_ttl_s`` ago, the most recent release (one
    ``append_n``) goes first, its blocks in the order they were freed (vLLM frees a
    request's tail first). Live blocks older than that are stale (a run that never came
    back) and go before every fresh one, least recently freed first. ``live_ttl_s=0``
    gives plain LRU in every tier.

    Labels: a block's tier is the highest label given by the requests that held it
    since it last left the queue (``label``); ``remove`` (a prefix hit) starts a new
    such period at SCRATCH, ``popleft`` (reuse for new content) forgets the block.
    Unlabelled blocks are SCRATCH, so with no labels (or ``use_tiers=False``)
    every block is in one tier and the order is vLLM's. SPLIT_PENDING falls back to
    its base tier at ``expires_at`` (applied lazily, before any pop or read of the
    order). At most ``pending_cap`` blocks are SPLIT_PENDING at once; beyond it a new
    pending label gives the base tier instead. Blocks in use are never in the queue
    (vLLM's ref_cnt decides that), so tiers only order free blocks.
    """

    def __init__(
        self,
        blocks: Sequence[B],
        *,
        use_tiers: bool = True,
        pending_cap: int = 0,
        pending_ttl_s: float = DEFAULT_PENDING_TTL_S,
        live_ttl_s: float = DEFAULT_LIVE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if live_ttl_s < 0:
            raise ValueError(f"live_ttl_s must be >= 0, got {live_ttl_s}")
        self.use_tiers = use_tiers
        self.pending_cap = pending_cap
        self.pending_ttl_s = pending_ttl_s
        self.live_ttl_s = live_ttl_s
        self._clock = clock
        self._states: dict[int, _State[B]] = {}
        self._heaps: list[list[tuple[_Key, int]]] = [[] for _ in Tier]
        self._live = [0] * len(Tier)
        self._expiry: list[tuple[float, int, int]] = []
        self._aging: list[tuple[float, int, int]] = []  # (stale at, block id, seq)
        self._sessions: dict[str, set[int]] = {}
        self._front, self._back = 0, -1
        self._n_pending = 0
        self.num_free_blocks = 0
        self.evictions = [0] * len(Tier)
        self.hits = [0] * len(Tier)
        for blk in blocks:  # empty blocks: nothing to age
            self._back += 1
            self._link(self._state(blk), self._back)

    @classmethod
    def replace_in(cls, pool: Any, **kwargs: Any) -> TieredFreeBlockQueue[Any]:
        """Swap a vLLM ``BlockPool``'s free queue for a tiered one holding the same order."""
        old = pool.free_block_queue
        blocks = old.get_all_free_blocks()
        for blk in blocks:  # the stock list's links are dead from here on
            blk.prev_free_block = blk.next_free_block = None
        queue: TieredFreeBlockQueue[Any] = cls(blocks, **kwargs)
        pool.free_block_queue = queue
        return queue

    # -- FreeKVCacheBlockQueue interface -------------------------------------------------

    def popleft(self) -> B:
        if self.num_free_blocks == 0:
            raise ValueError("No free blocks available")
        self._expire(self._clock())
        return self._pop()

    def popleft_n(self, n: int) -> list[B]:
        if n > self.num_free_blocks:
            raise ValueError(f"cannot pop {n} blocks, {self.num_free_blocks} are free")
        if n == 0:
            return []
        self._expire(self._clock())
        return [self._pop() for _ in range(n)]

    def remove(self, block: B) -> None:
        """Take a free block out of the queue because a request hit it in the prefix cache."""
        st = self._states.get(block.block_id)
        if st is None or st.seq is None:
            raise RuntimeError(f"remove() called on a block that is not free: {block}")
        self._expire(self._clock())
        if block.block_hash is not None:
            self.hits[st.tier] += 1
        self._unlink(st)
        self._relabel(st, Tier.SCRATCH, Tier.SCRATCH, None)

    def append(self, block: B) -> None:
        self.append_n([block])

    def append_n(self, blocks: Sequence[B]) -> None:
        if not blocks:
            return
        now = self._clock()
        self._expire(now)
        group = self._back + 1
        fresh = self.live_ttl_s > 0
        for blk in blocks:
            self._back += 1
            st = self._state(blk)
            st.group, st.fresh = group, fresh
            if fresh:
                heapq.heappush(self._aging, (now + self.live_ttl_s, blk.block_id, self._back))
            self._link(st, self._back)
        self._maybe_compact()

    def prepend_n(self, blocks: Sequence[B]) -> None:
        """Put blocks at the very front: vLLM reuses these first as they hold no cached KV."""
        if not blocks:
            return
        self._front -= len(blocks)
        for i, blk in enumerate(blocks):
            st = self._state(blk)
            self._forget(st)
            st.group, st.fresh = self._front + i, False
            self._link(st, self._front + i)
        self._maybe_compact()

    def get_all_free_blocks(self) -> list[B]:
        """All free blocks in eviction order."""
        self._expire(self._clock())
        free = sorted((st.tier, self._key(st), st.block.block_id) for st in self._free_states())
        return [self._states[bid].block for _, _, bid in free]

    def iter_blocks_after(self, cursor: B | None) -> Iterator[B]:
        """Free blocks in eviction order after ``cursor`` (none if it is no longer free)."""
        order = self.get_all_free_blocks()
        if cursor is None:
            yield from order
            return
        st = self._states.get(cursor.block_id)
        if st is None or st.seq is None:
            return
        at = next(i for i, blk in enumerate(order) if blk is cursor)
        yield from order[at + 1 :]

    # -- labels ----------------------------------------------------------------------------

    def label(self, block_id: int, label: BlockLabel | None, session: str | None = None) -> None:
        """Record that a request holding ``block_id`` gives it ``label`` (and ``session``).

        The block keeps the highest label it gets; a SPLIT_PENDING label beyond
        ``pending_cap`` counts as its base tier.
        """
        st = self._states.get(block_id)
        if st is None:
            raise KeyError(f"block {block_id} is unknown to the free queue")
        if session is not None and session not in st.sessions:
            st.sessions.add(session)
            self._sessions.setdefault(session, set()).add(block_id)
        if label is None or not self.use_tiers:
            return
        now = self._clock()
        self._expire(now)
        if label.tier != _PENDING:
            if st.tier == _PENDING:
                if label.tier > st.base:
                    self._relabel(st, _PENDING, label.tier, st.expires_at)
            elif label.tier > st.tier:
                self._relabel(st, label.tier, Tier.SCRATCH, None)
            return
        expires = now + (label.ttl_s if label.ttl_s is not None else self.pending_ttl_s)
        if st.tier == _PENDING:
            assert st.expires_at is not None, "pending block without expiry"
            self._relabel(st, _PENDING, max(st.base, label.base), max(st.expires_at, expires))
        elif self._n_pending < self.pending_cap:
            self._relabel(st, _PENDING, max(st.tier, label.base), expires)
        elif label.base > st.tier:
            self._relabel(st, label.base, Tier.SCRATCH, None)

    def release(self, session: str) -> int:
        """Demote the blocks of a finished run to SCRATCH.

        Blocks another live session also used keep their label, so a system prompt that
        live runs share stays SYSTEM; once its last user is gone it is dead content like
        the rest and ages by LRU. (Keeping every released SYSTEM block above all others
        let the system prompts of finished conversations crowd out the context of live
        ones: on the WEKA Claude Code trace, where each conversation has its own, that
        cost 6-7 points of KV hit rate against plain LRU.) Returns how many blocks were
        demoted.
        """
        demoted = 0
        self._expire(self._clock())
        for bid in self._sessions.pop(session, set()):
            st = self._states[bid]
            st.sessions.discard(session)
            if st.sessions or not self.use_tiers:
                continue
            if st.tier != Tier.SCRATCH:
                self._relabel(st, Tier.SCRATCH, Tier.SCRATCH, None)
                demoted += 1
        return demoted

    def clear_labels(self) -> None:
        """Forget every label and session (after vLLM resets its prefix cache)."""
        for st in self._states.values():
            self._forget(st)

    def tier_of(self, block_id: int) -> Tier:
        """The block's current label, after any due SPLIT_PENDING expiry."""
        self._expire(self._clock())
        return self._states[block_id].tier

    def stats(self) -> dict[str, TierStats]:
        """Per tier: free blocks holding cached KV, evictions of cached KV, prefix hits."""
        self._expire(self._clock())
        cached = [0] * len(Tier)
        for st in self._free_states():
            if st.block.block_hash is not None:
                cached[st.tier] += 1
        return {
            t.name: TierStats(
                cached_blocks=cached[t], evictions=self.evictions[t], hits=self.hits[t]
            )
            for t in Tier
        }

    @property
    def num_pending(self) -> int:
        """Blocks labelled SPLIT_PENDING now (free or in use), after any due expiry."""
        self._expire(self._clock())
        return self._n_pending

    # -- internals -------------------------------------------------------------------------

    def _state(self, block: B) -> _State[B]:
        st = self._states.get(block.block_id)
        if st is None:
            st = self._states[block.block_id] = _State(block)
        elif st.block is not block:
            raise RuntimeError(f"two blocks share id {block.block_id}")
        return st

    def _free_states(self) -> Iterator[_State[B]]:
        return (st for st in self._states.values() if st.seq is not None)

    def _key(self, st: _State[B]) -> _Key:
        """The block's place within its tier's heap (smallest goes first)."""
        assert st.seq is not None, "only free blocks have a place"
        if st.fresh and st.tier in _LIVE_TIERS:
            return (1, -st.group, st.seq)
        return (0, st.seq, 0)

    def _link(self, st: _State[B], seq: int) -> None:
        if st.seq is not None:
            raise RuntimeError(f"block {st.block.block_id} is already free")
        st.seq = seq
        heapq.heappush(self._heaps[st.tier], (self._key(st), st.block.block_id))
        self._live[st.tier] += 1
        self.num_free_blocks += 1

    def _unlink(self, st: _State[B]) -> None:
        # The heap entry stays behind; it is stale because st.seq no longer matches.
        st.seq = None
        self._live[st.tier] -= 1
        self.num_free_blocks -= 1

    def _pop(self) -> B:
        for tier, heap in enumerate(self._heaps):
            if not self._live[tier]:
                continue
            while True:
                key, bid = heapq.heappop(heap)
                st = self._states[bid]
                if st.seq is not None and st.tier == tier and key == self._key(st):
                    break
            if st.block.block_hash is not None:
                self.evictions[tier] += 1
            self._unlink(st)
            self._forget(st)
            return st.block
        raise AssertionError("num_free_blocks says a block is free but every tier is empty")

    def _relabel(self, st: _State[B], tier: Tier, base: Tier, expires_at: float | None) -> None:
        """Set a label, keeping the pending count, the expiry heap and the tier heaps in sync."""
        old = st.tier
        self._n_pending += (tier == _PENDING) - (old == _PENDING)
        st.tier, st.base, st.expires_at = tier, base, expires_at
        st.gen += 1
        if tier == _PENDING:
            assert expires_at is not None, "SPLIT_PENDING label needs an expiry"
            heapq.heappush(self._expiry, (expires_at, st.block.block_id, st.gen))
        if st.seq is not None and old != tier:
            self._live[old] -= 1
            self._live[tier] += 1
            heapq.heappush(self._heaps[tier], (self._key(st), st.block.block_id))
            self._maybe_compact()

    def _forget(self, st: _State[B]) -> None:
        for s in st.sessions:
            owned = self._sessions.get(s)
            if owned is not None:
                owned.discard(st.block.block_id)
                if not owned:
                    del self._sessions[s]
        st.sessions.clear()
        if st.tier != Tier.SCRATCH:
            self._relabel(st, Tier.SCRATCH, Tier.SCRATCH, None)

    def _expire(self, now: float) -> None:
        """Apply what time has made due: pending labels end, live blocks go stale."""
        while self._expiry and self._expiry[0][0] <= now:
            _, bid, gen = heapq.heappop(self._expiry)
            st = self._states[bid]
            if st.gen == gen and st.tier == _PENDING:
                self._relabel(st, st.base, Tier.SCRATCH, None)
        moved = False
        while self._aging and self._aging[0][0] <= now:
            _, bid, seq = heapq.heappop(self._aging)
            st = self._states[bid]
            if st.seq != seq or not st.fresh:
                continue  # reused or re-freed since: a newer entry speaks for it
            st.fresh = False
            if st.tier in _LIVE_TIERS:
                heapq.heappush(self._heaps[st.tier], (self._key(st), bid))
                moved = True
        if moved:
            self._maybe_compact()
        if len(self._aging) > 2 * self.num_free_blocks + 64:
            # Entries of blocks reused before they aged only go when due; drop them early.
            self._aging = [e for e in self._aging if self._states[e[1]].seq == e[2]]
            heapq.heapify(self._aging)

    def _maybe_compact(self) -> None:
        # Removals and moves leave stale entries behind; rebuild once they dominate.
        if sum(map(len, self._heaps)) <= 2 * self.num_free_blocks + 64:
            return
        self._heaps = [[] for _ in Tier]
        for st in self._free_states():
            self._heaps[st.tier].append((self._key(st), st.block.block_id))
        for heap in self._heaps:
            heapq.heapify(heap)

    def check_integrity(self) -> None:
        """Assert the queue's invariants (tests and debug runs call this)."""
        free = list(self._free_states())
        assert self.num_free_blocks == len(free) == sum(self._live), "free count out of sync"
        live_entries = [set(h) for h in self._heaps]
        seqs = set()
        for st in free:
            assert st.seq is not None
            bid = st.block.block_id
            assert (self._key(st), bid) in live_entries[st.tier], f"free block {bid} not in heap"
            assert st.seq not in seqs, f"two free blocks share position {st.seq}"
            seqs.add(st.seq)
            assert getattr(st.block, "ref_cnt", 0) == 0, f"free block {bid} is still referenced"
        for tier, n in enumerate(self._live):
            assert n == sum(1 for st in free if st.tier == tier), f"tier {tier} count out of sync"
        pending = [st for st in self._states.values() if st.tier == _PENDING]
        assert len(pending) == self._n_pending, "pending count out of sync"
        assert self._n_pending <= max(self.pending_cap, 0), "more pending blocks than the cap"
        for bid, st in self._states.items():
            assert (st.expires_at is not None) == (st.tier == _PENDING), f"block {bid} expiry"
            assert st.base < _PENDING, f"block {bid} falls back to SPLIT_PENDING"
            assert self.use_tiers or st.tier == Tier.SCRATCH, f"block {bid} labelled, tiers off"
            for s in st.sessions:
                assert bid in self._sessions.get(s, ()), f"session index lost block {bid}"
        for s, bids in self._sessions.items():
            assert bids and all(s in self._states[b].sessions for b in bids), f"session {s} index"
