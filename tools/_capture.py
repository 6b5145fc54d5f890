"""Bounded text for the model: keep the head and the tail of a stream, count what was dropped.

Every built-in tool that returns data of unbounded size (process output, files, HTTP
bodies) goes through here, so the model always sees the same truncation marker.
"""

from __future__ import annotations

TRUNCATION_MARKER = "[... {dropped} bytes truncated ...]"


def truncation_marker(dropped: int) -> str:
    """The line that replaces ``dropped`` bytes the model does not see."""
    return TRUNCATION_MARKER.format(dropped=f"{dropped:,}")


class OutputCapture:
    """Accumulates a byte stream, keeping at most ``limit`` bytes of it.

    Invariant: ``head`` holds the first bytes fed (up to ``head_limit``), ``tail`` the
    last bytes fed after the head filled (up to ``limit - head_limit``), and
    ``total == len(head) + dropped + len(tail)``. The tail is kept because errors
    (tracebacks, compiler messages) usually come last::

        fed:   |<- head ->|<------ dropped ------>|<- tail ->|
               0      head_limit              total-len(tail) total
    """

    __slots__ = ("dropped", "head", "head_limit", "limit", "tail", "total")

    def __init__(self, limit: int, *, tail_fraction: float = 1 / 3) -> None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        if not 0.0 <= tail_fraction <= 1.0:
            raise ValueError(f"tail_fraction must be in [0, 1], got {tail_fraction}")
        self.limit = limit
        self.head_limit = limit - int(limit * tail_fraction)
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        """Add the next bytes of the stream."""
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        tail_limit = self.limit - self.head_limit
        self.tail += chunk
        excess = len(self.tail) - tail_limit
        if excess > 0:
            del self.tail[:excess]
            self.dropped += excess

    @property
    def truncated(self) -> bool:
        """Whether some bytes were dropped."""
        return self.dropped > 0

    def text(self) -> str:
        """The kept bytes as text, with a marker where bytes were dropped."""
        head = self.head.decode("utf-8", errors="replace")
        if not self.dropped:
            return head + self.tail.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        return f"{head}\n{truncation_marker(self.dropped)}\n{tail}"

    def check_integrity(self) -> None:
        """Assert the byte accounting invariant (for tests)."""
        assert len(self.head) <= self.head_limit, "head grew past its limit"
        assert len(self.tail) <= self.limit - self.head_limit, "tail grew past its limit"
        assert self.total == len(self.head) + self.dropped + len(self.tail), (
            f"byte accounting out of sync: total={self.total} head={len(self.head)} "
            f"dropped={self.dropped} tail={len(self.tail)}"
        )


def truncate_text(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` UTF-8 bytes (head and tail), marked where cut."""
    capture = OutputCapture(limit)
    capture.feed(text.encode("utf-8"))
    return capture.text()
