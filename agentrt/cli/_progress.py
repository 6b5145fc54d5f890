"""A one-line progress bar on stderr: requests done of the run's total, and elapsed time.

On a terminal the line redraws in place (at most a few times a second); elsewhere (a log
file, CI) only each run's final line is written, so logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 24
_REDRAW_S = 0.2


class ProgressBar:
    """Draws ``label [#####-----] done/total requests  elapsed``.

    Args:
        stream: where to draw (stderr by default).
        live: redraw in place; default: only when ``stream`` is a terminal.
    """

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.label = ""
        self.total = 0
        self.done = 0
        self._t0 = 0.0
        self._drawn = 0.0

    def start(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self._t0 = time.monotonic()
        self._drawn = 0.0
        self._draw(force=True)

    def advance(self) -> None:
        self.done += 1
        self._draw(force=self.done == self.total)

    def tick(self) -> None:
        """Redraw, so the elapsed time moves while no request finishes."""
        self._draw(force=False)

    def finish(self) -> None:
        if self.live:
            self._draw(force=True)
            self.stream.write("\n")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def line(self) -> str:
        filled = _WIDTH * self.done // self.total if self.total else _WIDTH
        bar = "#" * filled + "-" * (_WIDTH - filled)
        elapsed = time.monotonic() - self._t0
        return f"{self.label} [{bar}] {self.done}/{self.total} requests  {elapsed:5.0f}s"

    def _draw(self, *, force: bool) -> None:
        if not self.live:
            return
        t = time.monotonic()
        if not force and t - self._drawn < _REDRAW_S:
            return
        self._drawn = t
        self.stream.write("\r" + self.line())
        self.stream.flush()
