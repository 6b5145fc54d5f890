"""A model-free prefix cache with vLLM's block semantics, for ``ScriptedEngine``.

Blocks are identified by the hash chain of their tokens (plus the cache salt), as in
vLLM: a block can hit only when every block before it hits too. Free cached blocks
are evicted by tier (lowest first) and least recently used within a tier, the same
order the tier-aware vLLM scheduler keeps; with ``use_tiers=False`` it is plain LRU.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._types import CacheHint, SessionId, Tier, TierStats


@dataclass(slots=True)
class _Block:
    key: int
    tier: Tier = Tier.SCRATCH
    refs: int = 0
    last_used: int = 0
    sessions: set[SessionId] = field(default_factory=set)
    expires_at: float | None = None
    base: Tier = Tier.DEFAULT

    def tier_at(self, now: float) -> Tier:
        """SPLIT_PENDING falls back to its base tier once its TTL has passed."""
        if self.expires_at is not None and now >= self.expires_at:
            return self.base
        return self.tier


@dataclass(frozen=True, slots=True)
class Allocation:
    """Blocks pinned for one request; ``cached_tokens`` of its prompt were already present."""

    keys: tuple[int, ...]
    cached_tokens: int


class SimPrefixCache:
    """Block-granular prefix cache with a fixed capacity (``None``: unbounded).

    Invariants: a block with ``refs > 0`` is never evicted; ``len(blocks) <= capacity``
    after every ``allocate`` that succeeds.
    """

    def __init__(self, block_size: int, capacity: int | None, *, use_tiers: bool = True) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.block_size = block_size
        self.capacity = capacity
        self.use_tiers = use_tiers
        self._blocks: dict[int, _Block] = {}
        self._clock = itertools.count(1)
        self.queries = 0
        self.hits = 0
        self.evictions: dict[Tier, int] = dict.fromkeys(Tier, 0)
        self.tier_hits: dict[Tier, int] = dict.fromkeys(Tier, 0)

    def block_keys(self, tokens: Sequence[int], salt: str | None) -> list[int]:
        """Hash chain of the full blocks of ``tokens``."""
        keys: list[int] = []
        parent = hash(("agentrt-root", salt))
        bs = self.block_size
        for i in range(len(tokens) // bs):
            parent = hash((parent, tuple(tokens[i * bs : (i + 1) * bs])))
            keys.append(parent)
        return keys

    def cached_prefix_blocks(self, keys: Sequence[int]) -> int:
        n = 0
        for k in keys:
            if k not in self._blocks:
                break
            n += 1
        return n

    def free_blocks_needed(self, keys: Sequence[int]) -> int:
        return len(keys) - self.cached_prefix_blocks(keys)

    def can_allocate(self, n_new: int) -> bool:
        if self.capacity is None:
            return True
        evictable = sum(1 for b in self._blocks.values() if b.refs == 0)
        return len(self._blocks) - evictable + n_new <= self.capacity

    def allocate(
        self, prompt: Sequence[int], salt: str | None, prompt_len: int, now_s: float = 0.0
    ) -> Allocation:
        """Pin the prompt's blocks, reusing the cached prefix (vLLM never caches the last token).

        Raises:
            MemoryError: the blocks cannot fit even after evicting every free block.
        """
        keys = self.block_keys(prompt, salt)
        # vLLM recomputes at least one prompt token, so a fully cached prompt hits one block less.
        hit_blocks = min(self.cached_prefix_blocks(keys), (prompt_len - 1) // self.block_size)
        new = len(keys) - self.cached_prefix_blocks(keys)
        if not self.can_allocate(new):
            raise MemoryError("prefix cache full of blocks in use")
        now = next(self._clock)
        for i, k in enumerate(keys):
            blk = self._blocks.get(k)
            if blk is None:
                self._make_room(1, now_s)
                blk = self._blocks[k] = _Block(key=k)
            elif i < hit_blocks:
                self.tier_hits[blk.tier] += 1
            blk.refs += 1
            blk.last_used = now
        self.queries += prompt_len
        self.hits += hit_blocks * self.block_size
        return Allocation(tuple(keys), hit_blocks * self.block_size)

    def extend(
        self, alloc: Allocation, tokens: Sequence[int], salt: str | None, now_s: float = 0.0
    ) -> Allocation:
        """Pin the blocks that generated tokens filled (``tokens`` = prompt + output so far)."""
        keys = self.block_keys(tokens, salt)
        extra = keys[len(alloc.keys) :]
        now = next(self._clock)
        for k in extra:
            blk = self._blocks.get(k)
            if blk is None:
                self._make_room(1, now_s)
                blk = self._blocks[k] = _Block(key=k)
            blk.refs += 1
            blk.last_used = now
        return Allocation(alloc.keys + tuple(extra), alloc.cached_tokens)

    def free(
        self,
        alloc: Allocation,
        hints: Sequence[CacheHint],
        session: SessionId | None,
        *,
        now_s: float = 0.0,
        default_tier: Tier = Tier.SCRATCH,
    ) -> None:
        """Unpin a request's blocks, labelling each with the highest overlapping hint.

        A block still used by another request keeps the higher of both labels.
        """
        now = next(self._clock)
        bs = self.block_size
        for i, k in enumerate(alloc.keys):
            blk = self._blocks[k]
            best: CacheHint | None = None
            for h in hints:
                if h.start < (i + 1) * bs and h.end > i * bs and (best is None or h.tier > best.tier):
                    best = h
            tier = default_tier if best is None else max(default_tier, best.tier)
            shared = blk.refs > 1 and blk.tier_at(now_s) > tier
            if not shared:
                blk.tier = tier
                pending = best is not None and best.tier == Tier.SPLIT_PENDING and best.ttl_s
                blk.expires_at = now_s + best.ttl_s if pending and best and best.ttl_s else None
                blk.base = best.base if best is not None else Tier.DEFAULT
            if session is not None:
                blk.sessions.add(session)
            blk.refs -= 1
            blk.last_used = now

    def release(self, session: SessionId) -> None:
        """Demote a finished run's blocks to SCRATCH, keeping SYSTEM ones."""
        for blk in self._blocks.values():
            if session in blk.sessions:
                blk.sessions.discard(session)
                if blk.tier != Tier.SYSTEM and not blk.sessions:
                    blk.tier = Tier.SCRATCH

    def _make_room(self, n: int, now_s: float = 0.0) -> None:
        if self.capacity is None:
            return
        while len(self._blocks) + n > self.capacity:
            free = [b for b in self._blocks.values() if b.refs == 0]
            if not free:
                raise MemoryError("prefix cache full of blocks in use")
            if self.use_tiers:
                victim = min(free, key=lambda b: (b.tier_at(now_s), b.last_used))
            else:
                victim = min(free, key=lambda b: b.last_used)
            self.evictions[victim.tier_at(now_s)] += 1
            del self._blocks[victim.key]

    @property
    def num_cached(self) -> int:
        return len(self._blocks)

    def tier_stats(self) -> dict[str, TierStats]:
        counts: dict[Tier, int] = dict.fromkeys(Tier, 0)
        for b in self._blocks.values():
            counts[b.tier] += 1
        return {
            t.name: TierStats(cached_blocks=counts[t], evictions=self.evictions[t], hits=self.tier_hits[t])
            for t in Tier
        }

    def check_integrity(self) -> None:
        """Assert the invariants (tests and debug runs call this)."""
        if self.capacity is not None:
            assert len(self._blocks) <= self.capacity, "sim cache holds more blocks than capacity"
        for b in self._blocks.values():
            assert b.refs >= 0, f"block {b.key} has negative refcount {b.refs}"
