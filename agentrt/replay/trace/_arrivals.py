"""Arrival times for replay: seeded Poisson processes, or the trace's own times rescaled."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ._trace import Trace


def poisson_arrivals(n: int, rate_per_s: float, seed: int) -> list[float]:
    """``n`` arrival times of a Poisson process with the given rate, starting at 0.

    The first request arrives at 0 (a replay has no reason to idle first); each later
    one follows an exponential gap of mean ``1 / rate_per_s``. The same seed gives the
    same sequence on every machine (numpy's PCG64 generator).

    Raises:
        ValueError: when ``n < 0`` or the rate is not a positive number.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
        raise ValueError(f"rate_per_s must be a positive number, got {rate_per_s!r}")
    if n == 0:
        return []
    gaps = np.random.default_rng(seed).exponential(1.0 / rate_per_s, size=n - 1)
    return [0.0, *np.cumsum(gaps).tolist()]


def recorded_arrivals(trace: Trace, time_scale: float = 1.0) -> list[float]:
    """The trace's arrival times (request order) multiplied by ``time_scale``.

    ``time_scale=0.5`` replays the recorded pattern twice as fast.
    """
    if not (time_scale > 0 and math.isfinite(time_scale)):
        raise ValueError(f"time_scale must be a positive number, got {time_scale!r}")
    return [r.arrival_s * time_scale for r in trace.requests]


def assign_arrivals(trace: Trace, arrivals: Sequence[float]) -> Trace:
    """A new trace whose ``i``-th request arrives at ``arrivals[i]``.

    Requests keep their order, so pass non-decreasing times to keep the trace sorted.

    Raises:
        ValueError: when the lengths differ or a time is negative or not finite.
    """
    if len(arrivals) != len(trace.requests):
        raise ValueError(f"arrivals: {len(arrivals)} times for {len(trace.requests)} requests")
    for i, t in enumerate(arrivals):
        if not (t >= 0 and math.isfinite(t)):
            raise ValueError(f"arrivals[{i}]: must be a finite time >= 0, got {t!r}")
    return trace.with_requests(
        r.model_copy(update={"arrival_s": float(t)})
        for r, t in zip(trace.requests, arrivals, strict=True)
    )


def with_poisson_arrivals(trace: Trace, rate_per_s: float, seed: int) -> Trace:
    """``trace`` with seeded Poisson arrivals at ``rate_per_s`` (request order kept)."""
    return assign_arrivals(trace, poisson_arrivals(len(trace.requests), rate_per_s, seed))
