"""What every importer shares: the import error, token scaling, and hash-id bookkeeping.

Scaling rule (all importers): a recorded count ``n`` becomes ``0`` if ``n == 0`` else
``max(1, floor(n * scale + 0.5))``. Content that carries block-hash ids is scaled block by
block instead, so that every recorded block becomes exactly ``B`` tokens and equal ids
stay equal token blocks: ``B = max(1, round(source_block * scale))`` and the *effective*
scale of the whole trace is ``B / source_block`` (equal to the requested scale whenever
``source_block * scale`` is a whole number, e.g. 1/64 for 64-token blocks).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterable, Sequence

from ._schema import TokenContent, TraceRequest


class TraceImportError(ValueError):
    """A source record an importer cannot read. The message names the file and record."""

    def __init__(self, source: str, record: str, detail: str) -> None:
        self.source = source
        self.record = record
        self.detail = detail
        super().__init__(f"{source}: {record}: {detail}")


def scale_count(n: int, scale: float) -> int:
    """Scale a token count; anything recorded as non-empty keeps at least one token."""
    if n <= 0:
        return 0
    # Half-up rather than Python's banker's rounding: the same count always scales alike.
    return max(1, math.floor(n * scale + 0.5))


def scaled_block_tokens(source_block: int, scale: float) -> int:
    """Tokens per hash block after scaling (at least one)."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"token_scale must be a positive number, got {scale!r}")
    return max(1, math.floor(source_block * scale + 0.5))


class HashIds:
    """Maps source hash ids (within a scope) to trace-wide ids, and mints fresh ones.

    Sources scope their ids differently (WEKA: per conversation; Mooncake: one global
    space); keying by ``(scope, id)`` keeps unrelated blocks from colliding while
    equal source blocks in one scope stay equal.
    """

    def __init__(self) -> None:
        self._ids: dict[Hashable, int] = {}
        self._next = itertools.count()

    def get(self, scope: Hashable, source_id: int) -> int:
        key = (scope, source_id)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = next(self._next)
        return found

    def fresh(self) -> int:
        """An id equal to no other: a block seen nowhere else."""
        return next(self._next)


def hashed_content(
    source_ids: Sequence[int],
    source_tokens: int,
    source_block: int,
    block: int,
) -> tuple[int, int]:
    """Scale content that starts on a block boundary, keeping its block ids.

    Args:
        source_ids: ids of the recorded blocks this content covers, in order; may be one
            short when the last block is partial and no later prompt completed it.
        source_tokens: recorded token count.
        source_block: recorded tokens per block.
        block: tokens per block after scaling.

    Returns:
        The scaled token count and how many leading ``source_ids`` it uses (the caller
        pads with fresh ids when that exceeds ``len(source_ids)``).

    ::

        recorded  |--64--|--64--|-23-|        source_tokens = 151, 3 blocks
        scaled    |-B-|-B-|t|                 t = tail scaled by B/64, 1 <= t <= B
    """
    full, tail = divmod(source_tokens, source_block)
    tokens = full * block
    if tail:
        tokens += min(block, max(1, math.floor(tail * block / source_block + 0.5)))
    return tokens, math.ceil(tokens / block)


def padded_ids(ids: Iterable[int], count: int, hash_ids: HashIds) -> tuple[int, ...]:
    """The first ``count`` of ``ids``, padded with fresh ids when there are fewer."""
    out = list(itertools.islice(ids, count))
    out.extend(hash_ids.fresh() for _ in range(count - len(out)))
    return tuple(out)


def token_content(tokens: int, ids: tuple[int, ...] | None = None) -> TokenContent:
    return TokenContent(tokens=tokens, hash_ids=ids)


def by_arrival(requests: Iterable[TraceRequest]) -> tuple[TraceRequest, ...]:
    """Stable sort by arrival time (ties keep source order)."""
    return tuple(sorted(requests, key=lambda r: r.arrival_s))
