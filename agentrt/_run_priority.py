"""Run priority with a bounded gap: earlier agent runs first, later ones never starved.

Strict "earliest run first" lets a long queue of early runs hold every later run back:
each later run's next call waits behind all the earlier runs' calls. Here the oldest
live runs, as many as the gap, keep their order and every later run shares the priority
right behind them, where the engine serves it first come, first served. As early runs
finish, later ones move up (aging)::

    live runs (by arrival)    r7  r9  r10  r12  r13  r15 ...
    rank                       7   9   10   12   13   15
    priority (gap = 4)         7   9   10   11   11   11      cap = oldest live 7 + 4

The gap follows the engine's batch (``gap_for_batch``): a fixed one either orders too few
runs to help on a large batch or starves later runs on a small one.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from dataclasses import dataclass, field

DEFAULT_MAX_GAP = 4
"""The gap when neither the caller nor the engine says more (an engine that does not
report its batch size)."""


def gap_for_batch(max_num_seqs: int | None) -> int:
    """The gap for an engine whose steps hold at most ``max_num_seqs`` sequences: half of
    that (at least 1), or ``DEFAULT_MAX_GAP`` when it is not known.

    Why the batch sets it: how far earlier runs may go ahead before later ones starve
    depends on how many of them the engine serves at once. Measured on the twin with this
    project's CPU profile (docs/BENCHMARKS.md, "Run priority's gap"): with a batch of 4
    (the cache-pressure workload, 1 req/s) gaps of 2 and 4 gave 1.00x and 1.05x the median
    FTR of no priority, 8 gave 1.22x and 32 gave 1.72x; with a batch of 128 (56 web-search
    requests, 9 arrival draws) a gap of 4 gave 1.00-1.01x at 2-6 req/s and no gain, while
    32 and above gave 0.86-1.00x.
    """
    return DEFAULT_MAX_GAP if max_num_seqs is None else max(1, max_num_seqs // 2)


@dataclass(slots=True)
class RunPriorities:
    """Ranks of live runs (lower is earlier) and the priorities their requests get.

    Invariant: ``_heap`` holds every live rank, and ranks that closed only until they
    reach its top (``_closed`` has them); a request's priority is never more than the gap
    above the oldest live run's rank. The gap is ``max_gap`` when set, else
    ``gap_for_batch`` of the engine the request goes to. Thread-safe (agents may run on
    several event loops in one process).

    Raises:
        ValueError: ``max_gap`` is negative.
    """

    max_gap: int | None = None
    _ranks: itertools.count[int] = field(default_factory=itertools.count)
    _heap: list[int] = field(default_factory=list)
    _closed: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.max_gap is not None and self.max_gap < 0:
            raise ValueError(f"max_gap must be >= 0, got {self.max_gap}")

    def open(self) -> int:
        """A new run arrives: its rank (runs opened later get larger ranks)."""
        with self._lock:
            rank = next(self._ranks)
            heapq.heappush(self._heap, rank)
            return rank

    def close(self, rank: int) -> None:
        """The run of ``rank`` is over (idempotent)."""
        with self._lock:
            if rank in self._heap and rank not in self._closed:
                self._closed.add(rank)
            while self._heap and self._heap[0] in self._closed:
                self._closed.discard(heapq.heappop(self._heap))

    def priority(self, rank: int, max_num_seqs: int | None = None) -> int:
        """The priority for a request of the run of ``rank`` sent now (lower goes first) to
        an engine whose batch holds ``max_num_seqs`` sequences (None: not known)."""
        gap = gap_for_batch(max_num_seqs) if self.max_gap is None else self.max_gap
        with self._lock:
            oldest = self._heap[0] if self._heap else rank
        return min(rank, oldest + gap)

    def live(self) -> int:
        """How many runs are open."""
        with self._lock:
            return len(self._heap) - len(self._closed)

    def check_integrity(self) -> None:
        """Assert the class invariant (tests call this)."""
        with self._lock:
            assert self._closed <= set(self._heap), "a closed rank was never open"
            assert not self._heap or self._heap[0] not in self._closed, "closed rank on top"


RUN_PRIORITIES = RunPriorities()
"""The process-wide ranks that every agent run with ``run_priority`` takes."""
