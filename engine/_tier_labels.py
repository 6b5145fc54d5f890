"""How a request's cache hints become labels on its KV blocks: the one copy of that policy.

The tier-aware vLLM scheduler and ``ScriptedEngine``'s model-free cache both call
:func:`label_request_blocks` when a request's blocks are freed, and the labels land in
the same :class:`~._tier_queue.TieredFreeBlockQueue`. Nothing here imports vLLM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ._types import CacheHint, Tier


@dataclass(frozen=True, slots=True)
class BlockLabel:
    """What one request says about one block: its tier and, for SPLIT_PENDING, its fallback.

    Invariants: ``base < SPLIT_PENDING``; ``ttl_s`` is only read for SPLIT_PENDING
    (None: the queue's default lifetime).
    """

    tier: Tier
    base: Tier = Tier.SCRATCH
    ttl_s: float | None = None


class BlockLabeller(Protocol):
    """What labelling needs of the free-block queue (``TieredFreeBlockQueue`` fits)."""

    def label(
        self, block_id: int, label: BlockLabel | None, session: str | None = None
    ) -> None: ...


def block_labels(
    hints: Sequence[CacheHint], block_size: int, num_blocks: int
) -> list[BlockLabel | None]:
    """Label each of a request's blocks with the highest tier of the hints overlapping it.

    Block ``i`` covers token positions ``[i*block_size, (i+1)*block_size)``::

        tokens  |0 1 2 3|4 5 6 7|8 9 ...     block_size = 4
        hint         [3,         9)          -> blocks 0, 1 and 2

    A SPLIT_PENDING block falls back to the highest of its pending hints' bases and the
    other hints over it, so system-prompt blocks under a pending split expire to SYSTEM.
    Blocks no hint touches get None (the caller leaves them unlabelled: SCRATCH).
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    other = [-1] * num_blocks  # highest non-pending tier; -1: none
    pend_base = [-1] * num_blocks  # highest base of pending hints; -1: no pending hint
    pend_ttl: list[float | None] = [None] * num_blocks
    for h in hints:
        first, last = h.start // block_size, min(num_blocks, -(-h.end // block_size))
        for i in range(first, last):
            if h.tier == Tier.SPLIT_PENDING:
                pend_base[i] = max(pend_base[i], min(int(h.base), int(Tier.SYSTEM)))
                if h.ttl_s is not None:
                    pend_ttl[i] = max(pend_ttl[i] or 0.0, h.ttl_s)
            else:
                other[i] = max(other[i], int(h.tier))
    labels: list[BlockLabel | None] = []
    for i in range(num_blocks):
        if pend_base[i] >= 0:
            base = Tier(max(pend_base[i], other[i]))
            labels.append(BlockLabel(Tier.SPLIT_PENDING, base, pend_ttl[i]))
        elif other[i] >= 0:
            labels.append(BlockLabel(Tier(other[i])))
        else:
            labels.append(None)
    return labels


def prefix_monotone(labels: Sequence[BlockLabel | None]) -> list[BlockLabel | None]:
    """Cap each block's tier at its predecessor's, now and after any pending label expires.

    A prefix cache can only use block i if blocks 0..i-1 are cached too, so a block that
    outlives its predecessor is dead weight: a run's tool output (TOOL_OUTPUT) must not
    outrank the run's own earlier tokens (DEFAULT). The cap uses each block's lasting tier
    (its base while it is SPLIT_PENDING); a block after an unlabelled one stays unlabelled.

        tiers   SYSTEM SYSTEM USER_Q DEFAULT TOOL_OUT DEFAULT     (as hinted)
        kept    SYSTEM SYSTEM USER_Q DEFAULT DEFAULT  DEFAULT
    """
    out: list[BlockLabel | None] = []
    cap = int(Tier.SPLIT_PENDING)  # the previous block's lasting tier
    pending_ok = True  # the previous block is pending too (or there is none)
    for lab in labels:
        if lab is None or cap < 0:
            out.append(None)
            cap = -1
            continue
        if lab.tier == Tier.SPLIT_PENDING and pending_ok:
            base = Tier(min(int(lab.base), cap))
            out.append(BlockLabel(Tier.SPLIT_PENDING, base, lab.ttl_s))
            cap = int(base)
            continue
        lasting = lab.base if lab.tier == Tier.SPLIT_PENDING else lab.tier
        tier = Tier(min(int(lasting), cap))
        out.append(BlockLabel(tier))
        cap, pending_ok = int(tier), False
    return out


def label_request_blocks(
    queue: BlockLabeller,
    block_ids: Sequence[int | None],
    hints: Sequence[CacheHint],
    session: str | None,
    block_size: int,
) -> None:
    """Give a finishing request's blocks (in token order) the labels its hints imply.

    ``None`` stands for a placeholder block (vLLM's null block): it keeps its position
    in the prefix, so later blocks are capped as if it were there, but gets no label.
    Call it just before the blocks go back to the free queue.
    """
    labels = prefix_monotone(block_labels(hints, block_size, len(block_ids)))
    for block_id, label in zip(block_ids, labels, strict=True):
        if block_id is not None:
            queue.label(block_id, label, session)
