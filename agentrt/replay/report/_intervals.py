"""Repeated replays: each median with a 95% interval, and its ratio to the baseline with one.

Method (stated in every report): a paired two-level percentile bootstrap. One resample
draws the repeats with replacement, then, within each drawn repeat, the agent requests
with replacement; the statistic is the median over the pooled resampled requests. The
same draw is applied to every mode (repeat ``k`` of every mode shares its arrival
sequence, and a request id names the same request everywhere), so a ratio's interval
leaves out the noise the modes share. The interval is the 2.5th and 97.5th percentiles
over the resamples; the point value is the median over all requests of all repeats.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ._records import RequestRecord
from ._results import ReplayRun, modes_in_order
from ._summary import summarize

RESAMPLES = 2000
LEVEL = 0.95
METHOD = (
    f"paired two-level percentile bootstrap ({RESAMPLES} resamples: repeats, then requests "
    f"within each repeat), {LEVEL:.0%} interval"
)

Metric = Callable[[RequestRecord], float | None]
METRICS: dict[str, Metric] = {"ftr_p50": lambda r: r.ftr_s, "e2e_p50": lambda r: r.e2e_s}


@dataclass(frozen=True, slots=True)
class Interval:
    """A point value and its interval, ``low <= value <= high`` up to resampling noise."""

    value: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class RepeatCell:
    """One mode at one load over its repeats: medians and ratios to the baseline's.

    A metric is missing when no request of that mode finished (or the baseline is not
    replayed, for ratios).
    """

    mode: str
    load: float
    repeats: int
    medians: dict[str, Interval]
    ratios: dict[str, Interval]


def _values(run: ReplayRun, metric: Metric) -> dict[str, float]:
    out: dict[str, float] = {}
    for rec in run.records:
        v = metric(rec) if rec.ok else None
        if v is not None:
            out[rec.request_id] = v
    return out


def _percentiles(samples: list[float]) -> tuple[float, float]:
    samples.sort()
    tail = (1 - LEVEL) / 2
    lo = samples[round(tail * (len(samples) - 1))]
    hi = samples[round((1 - tail) * (len(samples) - 1))]
    return lo, hi


def repeat_cells(
    results: Sequence[ReplayRun],
    baseline: str = "baseline",
    *,
    seed: int = 0,
    resamples: int = RESAMPLES,
) -> list[RepeatCell]:
    """The intervals of every (mode, load), modes in report order, loads ascending
    (seeded: the same results give the same intervals)."""
    modes = modes_in_order(results, baseline)
    cells: list[RepeatCell] = []
    for load in sorted({r.load for r in results}):
        at = [r for r in results if r.load == load]
        repeats = sorted({r.repeat for r in at})
        ids = sorted({rec.request_id for r in at for rec in r.records})
        by_mode = {m: {r.repeat: r for r in at if r.mode == m} for m in modes}
        draws = make_draws(repeats, ids, seed=seed, resamples=resamples)
        for mode in modes:
            runs = by_mode[mode]
            if not runs:
                continue
            medians: dict[str, Interval] = {}
            ratios: dict[str, Interval] = {}
            for name, metric in METRICS.items():
                mine = {k: _values(run, metric) for k, run in runs.items()}
                point = _median([v for vals in mine.values() for v in vals.values()])
                if point is None:
                    continue
                medians[name] = _interval(point, draws, mine)
                base_runs = by_mode.get(baseline) or {}
                if base_runs and mode != baseline:
                    base = {k: _values(run, metric) for k, run in base_runs.items()}
                    base_point = _median([v for vals in base.values() for v in vals.values()])
                    if base_point:
                        ratios[name] = ratio_interval(point / base_point, draws, mine, base)
            cells.append(RepeatCell(mode, load, len(runs), medians, ratios))
    return cells


Draw = list[tuple[int, list[str]]]
"""One resample: the drawn repeats, each with the request ids drawn within it."""


def make_draws(
    repeats: Sequence[int], ids: Sequence[str], *, seed: int = 0, resamples: int = RESAMPLES
) -> list[Draw]:
    """The two-level resamples (seeded): repeats with replacement, then requests within each."""
    rng = random.Random(seed)
    return [
        [(k, [rng.choice(ids) for _ in ids]) for k in rng.choices(repeats, k=len(repeats))]
        for _ in range(resamples)
    ]


def _pick(draw: Draw, values: dict[int, dict[str, float]]) -> list[float]:
    return [vals[i] for k, chosen in draw if (vals := values.get(k)) for i in chosen if i in vals]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _interval(point: float, draws: list[Draw], values: dict[int, dict[str, float]]) -> Interval:
    stats = [m for d in draws if (m := _median(_pick(d, values))) is not None]
    lo, hi = _percentiles(stats) if stats else (point, point)
    return Interval(point, lo, hi)


def ratio_interval(
    point: float,
    draws: list[Draw],
    mine: dict[int, dict[str, float]],
    base: dict[int, dict[str, float]],
) -> Interval:
    """``point`` (mine over base) with the interval of that ratio over ``draws``; values
    are ``{repeat: {request id: value}}``, paired by repeat and request id."""
    stats: list[float] = []
    for d in draws:
        a, b = _median(_pick(d, mine)), _median(_pick(d, base))
        if a is not None and b:
            stats.append(a / b)
    lo, hi = _percentiles(stats) if stats else (point, point)
    return Interval(point, lo, hi)


def pooled_runs(results: Sequence[ReplayRun]) -> list[ReplayRun]:
    """One run per (mode, load) holding every repeat's requests.

    Latency percentiles are over the pooled requests; cache and tool-overlap rates are
    the mean over repeats (a theoretical maximum is per repeat: pooling prompts of
    different repeats would count them as sharing with each other). Results without
    repeats come back as they are.
    """
    if all(r.repeat == 0 for r in results):
        return list(results)
    keys = list(dict.fromkeys((r.mode, r.load) for r in results))
    pooled = []
    for mode, load in keys:
        runs = [r for r in results if r.mode == mode and r.load == load]
        summary = summarize([rec for r in runs for rec in r.records])
        summary = dataclasses.replace(
            summary,
            hit_rate=_mean([r.summary.hit_rate for r in runs]),
            max_hit_rate=_mean([r.summary.max_hit_rate for r in runs]),
            overlap_share=_mean([r.summary.overlap_share for r in runs]),
            fluidity_mean=_mean([r.summary.fluidity_mean for r in runs]),
        )
        config = {"repeats": len(runs), "pooled": True}
        pooled.append(
            ReplayRun(mode, load, summary, tuple(rec for r in runs for rec in r.records), config)
        )
    return pooled


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None
