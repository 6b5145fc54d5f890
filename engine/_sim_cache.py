"""A model-free KV cache with vLLM's block semantics and the tier policy's own code.

``ScriptedEngine`` needs a prefix cache that behaves like the real engine's without
importing vLLM. The block bookkeeping here is what vLLM's ``KVCacheManager`` and
``BlockPool`` do for one full-attention group; the eviction order and the labels are not
re-implemented: free blocks live in the tier-aware scheduler's
:class:`~._tier_queue.TieredFreeBlockQueue` and are labelled by
:func:`~._tier_labels.label_request_blocks`, exactly as in vLLM.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ._clock import now
from ._tier_labels import label_request_blocks
from ._tier_queue import DEFAULT_LIVE_TTL_S, DEFAULT_PENDING_TTL_S, TieredFreeBlockQueue
from ._tier_wire import DEFAULT_PENDING_CAP
from ._types import CacheHint, SessionId, TierStats


@dataclass(slots=True, eq=False)
class SimBlock:
    """One KV block. ``block_hash`` is set while the block is in the prefix cache."""

    block_id: int
    ref_cnt: int = 0
    block_hash: int | None = None


@dataclass(slots=True, eq=False)
class SimSequence:
    """One request's tokens and its block table (vLLM's ``Request`` as the cache sees it).

    Invariants: ``hashes[i]`` is the hash chain of ``tokens`` up to the end of block i,
    one per full block; ``blocks[:num_cached_blocks]`` are registered in the prefix cache;
    ``num_computed`` tokens have KV (or were prefix hits), ``cached_tokens`` of them hits.
    """

    salt: str | None
    tokens: list[int]
    hashes: list[int]
    blocks: list[SimBlock] = field(default_factory=list)
    num_computed: int = 0
    num_cached_blocks: int = 0
    cached_tokens: int = 0
    scheduled: bool = False


class SimKVCache:
    """Block pool, prefix cache and tiered free-block queue of one simulated engine.

    Args:
        block_size: tokens per block.
        num_blocks: usable blocks (None: unbounded, nothing is ever evicted). They are
            numbered from 1, as vLLM numbers its usable blocks (0 is its null block), so
            the same request sequence gives the same block ids here and in vLLM.
        use_tiers, pending_cap, pending_ttl_s, live_ttl_s: the scheduler's ``TierSettings``.
        clock: time for SPLIT_PENDING expiry (the event loop's clock by default).

    Invariants (vLLM's): a block with ``ref_cnt > 0`` is never in the free queue and
    never evicted; only full blocks whose KV is computed are cached, so a request's last
    sampled token (not yet fed back through the model) is never cached; a prefix hit is a
    run of cached blocks from the first one and leaves at least the last prompt token to
    compute; two blocks may hold the same content (vLLM does not de-duplicate).
    """

    def __init__(
        self,
        block_size: int,
        num_blocks: int | None,
        *,
        use_tiers: bool = True,
        pending_cap: float = DEFAULT_PENDING_CAP,
        pending_ttl_s: float = DEFAULT_PENDING_TTL_S,
        live_ttl_s: float = DEFAULT_LIVE_TTL_S,
        clock: Callable[[], float] = now,
    ) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        if num_blocks is not None and num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1 or None, got {num_blocks}")
        self.block_size = block_size
        self.capacity = num_blocks
        blocks = [SimBlock(i) for i in range(1, (num_blocks or 0) + 1)]
        self._minted = len(blocks)
        # Free blocks holding no cached KV; an unbounded pool reuses only these.
        self._unhashed_free = len(blocks)
        self.queue: TieredFreeBlockQueue[SimBlock] = TieredFreeBlockQueue(
            blocks,
            use_tiers=use_tiers,
            pending_cap=sys.maxsize if num_blocks is None else int(pending_cap * num_blocks),
            pending_ttl_s=pending_ttl_s,
            live_ttl_s=live_ttl_s,
            clock=clock,
        )
        self._cached: dict[int, dict[int, SimBlock]] = {}  # hash -> blocks, oldest first
        self.queries = 0
        self.hits = 0

    # -- sequences -------------------------------------------------------------------------

    def new_sequence(self, prompt: Sequence[int], salt: str | None) -> SimSequence:
        seq = SimSequence(salt, [], [])
        for token in prompt:
            self.append_token(seq, token)
        return seq

    def append_token(self, seq: SimSequence, token: int) -> None:
        """Add a token (the prompt's, or one just sampled) and hash the block it fills."""
        seq.tokens.append(token)
        n, bs = len(seq.tokens), self.block_size
        if n % bs == 0:
            # The salt enters through the chain's root, so it separates every block.
            parent = seq.hashes[-1] if seq.hashes else hash(("agentrt-root", seq.salt))
            seq.hashes.append(hash((parent, tuple(seq.tokens[n - bs :]))))

    # -- vLLM's KVCacheManager -------------------------------------------------------------

    def lookup(self, seq: SimSequence) -> list[SimBlock]:
        """The cached blocks a new request can reuse (``get_computed_blocks``).

        The longest run of cached blocks from the first, stopping one token short of the
        prompt's end: the last prompt token is always computed, for its logits.
        """
        hits: list[SimBlock] = []
        for h in seq.hashes[: (len(seq.tokens) - 1) // self.block_size]:
            blocks = self._cached.get(h)
            if not blocks:
                break
            hits.append(next(iter(blocks.values())))
        return hits

    def blocks_needed(
        self, seq: SimSequence, num_tokens: int, hits: Sequence[SimBlock] = ()
    ) -> int:
        """Free blocks that slots for the first ``num_tokens`` tokens take from the pool:
        new blocks, and hit blocks that are free now (``get_num_blocks_to_allocate``)."""
        new = -(-num_tokens // self.block_size) - len(seq.blocks) - len(hits)
        return max(new, 0) + sum(1 for b in hits if b.ref_cnt == 0)

    @property
    def num_free(self) -> int:
        """Free blocks, cached or not (every one can be allocated)."""
        return self.queue.num_free_blocks

    def allocate(
        self, seq: SimSequence, num_new_tokens: int, hits: Sequence[SimBlock] = ()
    ) -> bool:
        """Give slots to ``num_new_tokens`` more tokens whose KV is computed now
        (``allocate_slots``); False, changing nothing, when the blocks are not free.

        ``hits`` (from :meth:`lookup`) go with a request's first allocation. Blocks
        that become full of computed tokens join the prefix cache at once, as in vLLM.
        """
        computed = seq.num_computed + len(hits) * self.block_size
        need = self.blocks_needed(seq, computed + num_new_tokens, hits)
        if self.capacity is not None and need > self.num_free:
            return False
        if not seq.scheduled:
            seq.scheduled = True
            seq.cached_tokens = len(hits) * self.block_size
            self.queries += len(seq.tokens)
            self.hits += seq.cached_tokens
        for blk in hits:
            if blk.ref_cnt == 0:
                self.queue.remove(blk)
            blk.ref_cnt += 1
        seq.blocks.extend(hits)
        seq.num_cached_blocks += len(hits)
        end = computed + num_new_tokens
        missing = -(-end // self.block_size) - len(seq.blocks)
        seq.blocks.extend(self._new_block() for _ in range(missing))
        # Only tokens that exist are cached (vLLM caps at ``request.num_tokens``).
        for i in range(seq.num_cached_blocks, min(end, len(seq.tokens)) // self.block_size):
            blk = seq.blocks[i]
            blk.block_hash = seq.hashes[i]
            self._cached.setdefault(blk.block_hash, {})[blk.block_id] = blk
            seq.num_cached_blocks = i + 1
        seq.num_computed = end
        return True

    def free(
        self,
        seq: SimSequence,
        hints: Sequence[CacheHint] = (),
        session: SessionId | None = None,
    ) -> None:
        """Return a finished request's blocks, labelled from its hints (an aborted request
        passes none), tail first so that the tail is evicted first (vLLM's ``free``)."""
        if hints or session is not None:
            ids: list[int | None] = [b.block_id for b in seq.blocks]
            label_request_blocks(self.queue, ids, hints, session, self.block_size)
        first: list[SimBlock] = []
        last: list[SimBlock] = []
        for blk in reversed(seq.blocks):
            blk.ref_cnt -= 1
            if blk.ref_cnt == 0:
                # Blocks holding no cached KV are reused first (vLLM's LIFO for them).
                (last if blk.block_hash is not None else first).append(blk)
        self._unhashed_free += len(first)
        self.queue.prepend_n(first)
        self.queue.append_n(last)
        seq.blocks = []
        seq.num_cached_blocks = 0

    def release(self, session: SessionId) -> int:
        """Demote a finished run's blocks that no live run shares; returns blocks demoted."""
        return self.queue.release(session)

    def _new_block(self) -> SimBlock:
        if self.capacity is None and not self._unhashed_free:
            # Unbounded: a fresh block goes to the very front, so it is the one popped.
            self._minted += 1
            self.queue.prepend_n([SimBlock(self._minted)])
            self._unhashed_free += 1
        blk = self.queue.popleft()
        if blk.block_hash is None:
            self._unhashed_free -= 1
        else:  # evicted: its content leaves the prefix cache
            blocks = self._cached[blk.block_hash]
            del blocks[blk.block_id]
            if not blocks:
                del self._cached[blk.block_hash]
            blk.block_hash = None
        blk.ref_cnt = 1
        return blk

    # -- stats -----------------------------------------------------------------------------

    @property
    def usage(self) -> float:
        """Share of blocks held by requests (vLLM's ``kv_cache_usage_perc``)."""
        if self.capacity is None:
            return 0.0
        return 1.0 - self.num_free / self.capacity

    def tier_stats(self) -> dict[str, TierStats]:
        return self.queue.stats()

    def check_integrity(self) -> None:
        """Assert the invariants (tests and debug runs call this)."""
        self.queue.check_integrity()
        for h, blocks in self._cached.items():
            assert blocks, f"empty entry for hash {h}"
            for blk in blocks.values():
                assert blk.block_hash == h, f"block {blk.block_id} cached under a stale hash"
        free = self.queue.get_all_free_blocks()
        unhashed = sum(1 for b in free if b.block_hash is None)
        assert unhashed == self._unhashed_free, "count of free uncached blocks out of sync"
        assert all(b.ref_cnt == 0 for b in free), "a free block is still referenced"
        assert len(free) <= self._minted, "more free blocks than the pool holds"
