"""Run priority with a bounded gap: earlier agent runs first, later ones never starved.

Strict "earliest run first" lets a long queue of early runs hold every later run back:
each later run's next call waits behind all the earlier runs' calls, and medians suffer.
Here the first ``max_gap`` live runs keep their order and every later run shares the
priority right behind them, where the engine serves it first come, first served. As early
runs finish, later ones move up (aging)::

    live runs (by arrival)    r7  r9  r10  r12  r13  r15 ...
    rank                       7   9   10   12   13   15
    priority (max_gap = 4)     7   9   10   11   11   11      cap = oldest live 7 + 4
"""

from __future__ import annotations

import heapq
import itertools
import threading
from dataclasses import dataclass, field

DEFAULT_MAX_GAP = 4
"""How many priority steps the newest live run may trail the oldest by."""


@dataclass(slots=True)
class RunPriorities:
    """Ranks of live runs (lower is earlier) and the priorities their requests get.

    Invariant: ``_heap`` holds every live rank, and ranks that closed only until they
    reach its top (``_closed`` has them); a request's priority is never more than
    ``max_gap`` above the oldest live run's rank. Thread-safe (agents may run on several
    event loops in one process).

    Raises:
        ValueError: ``max_gap`` is negative.
    """

    max_gap: int = DEFAULT_MAX_GAP
    _ranks: itertools.count[int] = field(default_factory=itertools.count)
    _heap: list[int] = field(default_factory=list)
    _closed: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.max_gap < 0:
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

    def priority(self, rank: int) -> int:
        """The priority for a request of the run of ``rank`` sent now (lower goes first)."""
        with self._lock:
            oldest = self._heap[0] if self._heap else rank
        return min(rank, oldest + self.max_gap)

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
