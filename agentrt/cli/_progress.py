"""Replay progress on stderr, drawn by ``tqdm``: requests done of the run's total, elapsed
time, rate and time left.

On a terminal, one bar redraws in place. Elsewhere (a log file, ``nohup``, CI) a line is
written when the run starts, one per finished request, and one after each half minute
without any, so a log shows how far a long load has got instead of nothing until it ends::

    all @ 2/s: 3/40 requests [00:05<01:02, 0.60 req/s]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

_FORMAT = "{desc}: {n_fmt}/{total_fmt} requests [{elapsed}<{remaining}, {rate_fmt}]"
_QUIET_S = 30.0  # a line after this long without one, even if no request finished


class ProgressBar:
    """Shows ``label``'s progress as ``done/total`` requests (see the module docstring).

    Args:
        stream: where to write (stderr by default).
        live: a redrawn bar; default: only when ``stream`` is a terminal.
        clock: seconds, for the elapsed time of lines (tests pass their own).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.label = ""
        self.total = 0
        self.done = 0
        self._clock = clock
        self._t0 = 0.0
        self._written = 0.0
        self._bar: tqdm[None] | None = None

    def start(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self._t0 = self._clock()
        if self.live:
            self._bar = tqdm(
                total=total,
                desc=label,
                unit="req",
                file=self.stream,
                bar_format="{l_bar}{bar}| " + _FORMAT.split(": ", 1)[1],
                mininterval=0.2,
                dynamic_ncols=True,
                leave=True,
            )
        else:
            self._write()

    def advance(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
        else:
            self._write()

    def tick(self) -> None:
        """Redraw, so the elapsed time moves while no request finishes (for lines: after
        ``_QUIET_S`` without one)."""
        if self._bar is not None:
            self._bar.refresh()
        elif self._clock() - self._written >= _QUIET_S:
            self._write()

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.done < self.total:
            self._write()  # ended early (a time limit): say where
        self.stream.flush()

    def line(self) -> str:
        """The current state as one line (what a non-terminal stream gets)."""
        text = tqdm.format_meter(
            self.done,
            self.total,
            self._clock() - self._t0,
            prefix=self.label,
            unit="req",
            bar_format=_FORMAT,
        )
        return str(text)

    def _write(self) -> None:
        self._written = self._clock()
        self.stream.write(self.line() + "\n")
        self.stream.flush()
