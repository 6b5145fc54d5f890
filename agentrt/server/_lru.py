"""``IdleLRU``: a bounded map whose entries also expire after sitting unused for a while.

Holds what the server keeps only in case a client comes back (finished runs, idle
conversations), so memory stays flat however many clients come and go.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class IdleLRU(Generic[K, V]):
    """At most ``capacity`` entries; an entry unused for ``ttl_s`` seconds is dropped.

    Invariant: entries are ordered by last use, oldest first, so both the capacity and
    the TTL evict from the front (each operation is O(1) amortized).
    """

    def __init__(
        self,
        capacity: int,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_evict: Callable[[K, V], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"IdleLRU capacity must be >= 1, got {capacity}")
        if not ttl_s > 0:
            raise ValueError(f"IdleLRU ttl_s must be > 0, got {ttl_s}")
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._clock = clock
        self._on_evict = on_evict
        self._items: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def keys(self) -> Iterator[K]:
        return iter(self._items)

    def items(self) -> list[tuple[K, V]]:
        """Entries, least recently used first (does not count as a use)."""
        return [(k, v) for k, (v, _) in self._items.items()]

    def put(self, key: K, value: V) -> None:
        """Insert or refresh ``key`` as the most recently used entry."""
        self._items[key] = (value, self._clock())
        self._items.move_to_end(key)
        self.evict()

    def get(self, key: K) -> V | None:
        """The value (now most recently used), or None if absent or expired."""
        self.evict()
        item = self._items.get(key)
        if item is None:
            return None
        self._items[key] = (item[0], self._clock())
        self._items.move_to_end(key)
        return item[0]

    def pop(self, key: K) -> V | None:
        """Remove and return ``key``'s value (None if absent or expired)."""
        self.evict()
        item = self._items.pop(key, None)
        return None if item is None else item[0]

    def evict(self) -> None:
        """Drop expired entries and those over capacity, least recently used first."""
        now = self._clock()
        while self._items:
            key, (value, used) = next(iter(self._items.items()))
            if len(self._items) <= self.capacity and now - used <= self.ttl_s:
                break
            del self._items[key]
            if self._on_evict is not None:
                self._on_evict(key, value)

    def check_integrity(self) -> None:
        """Assert the ordering invariant and the bounds (for tests and debug runs)."""
        times = [used for _, used in self._items.values()]
        assert times == sorted(times), "IdleLRU entries are not ordered by last use"
        assert len(self._items) <= self.capacity, "IdleLRU holds more entries than its capacity"
