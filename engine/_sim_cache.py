"""A model-free prefix cache with vLLM's block semantics, for ``ScriptedEngine``.

Blocks are identified by the hash chain of their tokens (plus the cache salt), as in
vLLM: a block can hit only when every block before it hits too. Free cached blocks are
evicted by tier (lowest first) and least recently freed within a tier, the order the
tier-aware vLLM scheduler keeps; with ``use_tiers=False`` it is plain LRU.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._tier_queue import BlockLabel, prefix_monotone
from ._types import CacheHint, SessionId, Tier, TierStats


@dataclass(slots=True)
class _Block:
    key: int
    tier: Tier = Tier.SCRATCH
    refs: int = 0
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
    reserved: int = 0


class SimPrefixCache:
    """Block-granular prefix cache with a fixed capacity (``None``: unbounded).

    Invariants: a block with ``refs > 0`` is in no free list and is never evicted; every
    cached block with ``refs == 0`` is in exactly one free list (its tier's, or the single
    LRU list without tiers); ``len(blocks) <= capacity`` after every successful allocation.
    A block freed by several requests keeps the highest label any of them gave it since it
    last left the free lists.
    """

    def __init__(
        self,
        block_size: int,
        capacity: int | None,
        *,
        use_tiers: bool = True,
        pending_cap: float = 0.5,
    ) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.block_size = block_size
        self.capacity = capacity
        self.use_tiers = use_tiers
        self._pending_cap = None if capacity is None else int(pending_cap * capacity)
        self._blocks: dict[int, _Block] = {}
        self._free: dict[int, OrderedDict[int, _Block]] = {int(t): OrderedDict() for t in Tier}
        self._free_count = 0
        self._reserved = 0  # blocks promised to running requests' outputs
        self._by_session: dict[SessionId, set[int]] = {}
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
        """Blocks that pinning ``keys`` takes from the pool: absent ones and free cached ones."""
        needed = 0
        for k in keys:
            blk = self._blocks.get(k)
            if blk is None or blk.refs == 0:
                needed += 1
        return needed

    def can_allocate(self, n_new: int) -> bool:
        """Whether ``n_new`` more blocks can be in use (free cached blocks may be evicted)."""
        if self.capacity is None:
            return True
        return len(self._blocks) - self._free_count + self._reserved + n_new <= self.capacity

    def _list_of(self, blk: _Block, now_s: float) -> OrderedDict[int, _Block]:
        return self._free[int(blk.tier_at(now_s)) if self.use_tiers else 0]

    def _pin(self, key: int, now_s: float) -> tuple[_Block, bool]:
        """Take a block out of the free lists (or create it); returns (block, was cached)."""
        blk = self._blocks.get(key)
        if blk is None:
            self._make_room(now_s)
            blk = self._blocks[key] = _Block(key=key)
            cached = False
        else:
            cached = True
            if blk.refs == 0:
                for lst in self._free.values():
                    if lst.pop(key, None) is not None:
                        self._free_count -= 1
                        break
                # A block leaving the free lists starts a new labelling period.
                blk.tier, blk.expires_at = Tier.SCRATCH, None
        blk.refs += 1
        return blk, cached

    def allocate(
        self,
        prompt: Sequence[int],
        salt: str | None,
        prompt_len: int,
        now_s: float = 0.0,
        *,
        reserve: int = 0,
    ) -> Allocation:
        """Pin the prompt's blocks, reusing the cached prefix (vLLM never caches the last token).

        Raises:
            MemoryError: the blocks (and ``reserve`` more for the output) cannot fit even
                after evicting every free block.
        """
        keys = self.block_keys(prompt, salt)
        present = self.cached_prefix_blocks(keys)
        hit_blocks = min(present, (prompt_len - 1) // self.block_size)
        if not self.can_allocate(self.free_blocks_needed(keys) + reserve):
            raise MemoryError("prefix cache full of blocks in use")
        for i, k in enumerate(keys):
            blk = self._blocks.get(k)
            if blk is not None and i < hit_blocks:
                self.tier_hits[blk.tier_at(now_s)] += 1
            self._pin(k, now_s)
        self.queries += prompt_len
        self.hits += hit_blocks * self.block_size
        # Room for the blocks its output will fill: decoding never runs out of space.
        self._reserved += reserve
        return Allocation(tuple(keys), hit_blocks * self.block_size, reserve)

    def extend(
        self, alloc: Allocation, tokens: Sequence[int], salt: str | None, now_s: float = 0.0
    ) -> Allocation:
        """Pin the blocks that generated tokens filled (``tokens`` = prompt + output so far)."""
        extra = self.block_keys(tokens, salt)[len(alloc.keys) :]
        used = min(len(extra), alloc.reserved)
        self._reserved -= used
        for k in extra:
            self._pin(k, now_s)
        return Allocation(alloc.keys + tuple(extra), alloc.cached_tokens, alloc.reserved - used)

    def free(
        self,
        alloc: Allocation,
        hints: Sequence[CacheHint],
        session: SessionId | None,
        *,
        now_s: float = 0.0,
    ) -> None:
        """Unpin a request's blocks, labelling each with the highest overlapping hint
        (capped along the prefix, as the tier-aware scheduler does)."""
        self._reserved -= alloc.reserved
        room = self._pending_room(now_s) if any(h.tier == Tier.SPLIT_PENDING for h in hints) else 0
        for k, lab in zip(alloc.keys, self._labels(hints, len(alloc.keys)), strict=True):
            blk = self._blocks[k]
            if lab is not None and lab.tier == Tier.SPLIT_PENDING:
                if room <= 0:  # the cap: pending labels can never starve admission
                    lab = BlockLabel(lab.base)
                room -= 1
            if lab is not None and lab.tier >= blk.tier_at(now_s):
                blk.tier = lab.tier
                pending = lab.tier == Tier.SPLIT_PENDING
                blk.expires_at = now_s + lab.ttl_s if pending and lab.ttl_s else None
                blk.base = lab.base
            if session is not None:
                blk.sessions.add(session)
                self._by_session.setdefault(session, set()).add(k)
            blk.refs -= 1
            if blk.refs == 0:
                self._list_of(blk, now_s)[k] = blk
                self._free_count += 1

    def _labels(self, hints: Sequence[CacheHint], n: int) -> list[BlockLabel | None]:
        """Per block: the highest overlapping hint, then capped along the prefix."""
        bs = self.block_size
        raw: list[BlockLabel | None] = []
        for i in range(n):
            best: CacheHint | None = None
            for h in hints:
                if (
                    h.start < (i + 1) * bs
                    and h.end > i * bs
                    and (best is None or h.tier > best.tier)
                ):
                    best = h
            raw.append(None if best is None else BlockLabel(best.tier, best.base, best.ttl_s))
        return prefix_monotone(raw)

    def _pending_room(self, now_s: float) -> int:
        """How many more blocks may be labelled SPLIT_PENDING under the cap."""
        if self._pending_cap is None:
            return len(self._blocks) + 1
        pending = self._free[int(Tier.SPLIT_PENDING)]
        return self._pending_cap - sum(
            1 for b in pending.values() if b.tier_at(now_s) == Tier.SPLIT_PENDING
        )

    def release(self, session: SessionId) -> None:
        """Demote a finished run's blocks to SCRATCH (evicted first), keeping SYSTEM ones."""
        for key in self._by_session.pop(session, ()):
            blk = self._blocks.get(key)
            if blk is None or session not in blk.sessions:
                continue
            blk.sessions.discard(session)
            if blk.tier == Tier.SYSTEM or blk.sessions:
                continue
            if blk.refs == 0 and self.use_tiers:
                # A finished run's blocks are the best victims: first in line within SCRATCH.
                self._free[int(blk.tier)].pop(blk.key, None)
                scratch = self._free[int(Tier.SCRATCH)]
                scratch[blk.key] = blk
                scratch.move_to_end(blk.key, last=False)
            blk.tier, blk.expires_at = Tier.SCRATCH, None

    def _make_room(self, now_s: float) -> None:
        if self.capacity is None or len(self._blocks) + self._reserved < self.capacity:
            return
        if self.use_tiers:
            self._expire(now_s)
        for lst in self._free.values():  # tiers in ascending order
            if lst:
                _, victim = lst.popitem(last=False)
                self._free_count -= 1
                self.evictions[victim.tier_at(now_s)] += 1
                del self._blocks[victim.key]
                return
        raise MemoryError("prefix cache full of blocks in use")

    def _expire(self, now_s: float) -> None:
        pending = self._free[int(Tier.SPLIT_PENDING)]
        for key in [k for k, b in pending.items() if b.tier_at(now_s) != Tier.SPLIT_PENDING]:
            blk = pending.pop(key)
            blk.tier, blk.expires_at = blk.base, None
            self._free[int(blk.tier)][key] = blk

    @property
    def num_cached(self) -> int:
        return len(self._blocks)

    def tier_stats(self) -> dict[str, TierStats]:
        counts: dict[Tier, int] = dict.fromkeys(Tier, 0)
        for b in self._blocks.values():
            if b.refs == 0:
                counts[b.tier] += 1
        return {t.name: TierStats(counts[t], self.evictions[t], self.tier_hits[t]) for t in Tier}

    def check_integrity(self) -> None:
        """Assert the invariants (tests and debug runs call this)."""
        if self.capacity is not None:
            assert len(self._blocks) <= self.capacity, "sim cache holds more blocks than capacity"
        listed = [k for lst in self._free.values() for k in lst]
        assert len(listed) == len(set(listed)) == self._free_count, "free lists out of sync"
        for b in self._blocks.values():
            assert b.refs >= 0, f"block {b.key} has negative refcount {b.refs}"
            assert (b.refs == 0) == (b.key in set(listed)), (
                f"block {b.key} free-list membership wrong"
            )
