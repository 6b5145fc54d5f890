"""Expected tool latency, learned from past calls: the TTL source of split-prefill cache hints.

While a run's tools execute, its split A sits at the SPLIT_PENDING tier for about as long
as the tools are expected to take; a guess that is too short loses the prefill, one that
is too long holds cache blocks other runs could use. This tracker supplies the guess.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping

from ._tool import Tool

DEFAULT_LATENCY_S = 1.0


class LatencyTracker:
    """Exponentially weighted mean of measured call durations, per tool name.

    ``expected(tool)`` answers, in order: the learned mean once the tool has been
    measured; the tool's static ``expected_latency_s``; the tracker's ``default_s``.

    Invariant: a name has a mean exactly when it has at least one sample, and every
    mean is finite and non-negative (the mean of non-negative finite samples).
    Thread-safe, so tools finishing in worker threads may record directly.

    Args:
        alpha: weight of the newest sample, in (0, 1]; higher follows changes faster.
        default_s: the guess for a tool that was never measured and has no static value.
    """

    def __init__(self, *, alpha: float = 0.3, default_s: float = DEFAULT_LATENCY_S) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if not (math.isfinite(default_s) and default_s >= 0):
            raise ValueError(f"default_s must be a finite number >= 0, got {default_s}")
        self.alpha = alpha
        self.default_s = default_s
        self._mean: dict[str, float] = {}
        self._count: dict[str, int] = {}
        self._lock = threading.Lock()

    def record(self, name: str, seconds: float) -> None:
        """Add one measured call of the tool ``name`` that took ``seconds``.

        Raises:
            ValueError: ``seconds`` is negative, infinite or NaN.
        """
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds}")
        with self._lock:
            previous = self._mean.get(name)
            # The first sample is the mean: there is nothing to blend it with yet.
            self._mean[name] = (
                seconds if previous is None else previous + self.alpha * (seconds - previous)
            )
            self._count[name] = self._count.get(name, 0) + 1

    def expected(self, tool: Tool | str) -> float:
        """The expected duration (seconds) of one call of ``tool`` (a Tool or a tool name)."""
        name = tool if isinstance(tool, str) else tool.name
        with self._lock:
            learned = self._mean.get(name)
        if learned is not None:
            return learned
        if isinstance(tool, Tool) and tool.expected_latency_s is not None:
            return tool.expected_latency_s
        return self.default_s

    def expected_batch(self, tools: Iterable[Tool | str]) -> float:
        """Expected duration of calls that run concurrently: the slowest one's (0.0 if none)."""
        return max((self.expected(t) for t in tools), default=0.0)

    def samples(self, name: str) -> int:
        """How many calls of ``name`` were recorded."""
        with self._lock:
            return self._count.get(name, 0)

    def snapshot(self) -> Mapping[str, float]:
        """The learned means by tool name (a copy)."""
        with self._lock:
            return dict(self._mean)

    def check_integrity(self) -> None:
        """Assert the class invariant (tests and debug runs call this)."""
        with self._lock:
            assert self._mean.keys() == self._count.keys(), "means and sample counts out of sync"
            for name, mean in self._mean.items():
                assert math.isfinite(mean) and mean >= 0, f"mean of {name!r} is {mean}"
                assert self._count[name] > 0, f"{name!r} has a mean but no samples"
