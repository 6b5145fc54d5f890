"""Replay results across modes and loads, and the load-at-target comparison between
modes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ._metrics import LoadAtTarget, load_at_target
from ._records import RequestRecord
from ._summary import RunSummary

CONTROL_MODE = "baseline_again"
"""The A/A control: the baseline's switches under another name, run in each repeat at
another place than the baseline (the order rotates, ``mode_order``); its change against the
baseline is the run-to-run noise of the machine (drift included)."""


@dataclass(frozen=True, slots=True)
class ReplayRun:
    """One replay run: a mode at an offered load (agent requests per second).

    ``repeat`` numbers the repetitions of the same (mode, load) with different arrival
    draws (``agentrt replay --repeats``); 0 for the first (or only) one.
    """

    mode: str
    load: float
    summary: RunSummary
    records: tuple[RequestRecord, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    repeat: int = 0


@dataclass(frozen=True, slots=True)
class Ratio:
    """A mode's load at target over the baseline's; ``bound`` says how exact it is
    (a ``lower_bound`` load on either side makes the ratio one-sided)."""

    value: float
    bound: Literal["exact", "at_least", "at_most", "unknown"]


@dataclass(frozen=True, slots=True)
class TargetRow:
    """Load at the FTR target for one mode, by median and by p90 FTR."""

    mode: str
    median: LoadAtTarget | None
    p90: LoadAtTarget | None
    median_ratio: Ratio | None
    p90_ratio: Ratio | None


def modes_in_order(results: Sequence[ReplayRun], baseline: str) -> list[str]:
    """Baseline first, then the others in order of first appearance."""
    seen = list(dict.fromkeys(r.mode for r in results))
    return ([baseline] if baseline in seen else []) + [m for m in seen if m != baseline]


def ratio(mode: LoadAtTarget | None, base: LoadAtTarget | None) -> Ratio | None:
    """``mode.load / base.load`` with its direction of uncertainty."""
    if mode is None or base is None or base.load <= 0:
        return None
    value = mode.load / base.load
    lower_mode, lower_base = mode.kind == "lower_bound", base.kind == "lower_bound"
    if lower_mode and lower_base:
        return Ratio(value, "unknown")
    if lower_mode:
        return Ratio(value, "at_least")
    if lower_base:
        return Ratio(value, "at_most")
    return Ratio(value, "exact")


def target_table(
    results: Sequence[ReplayRun], target_s: float, baseline: str = "baseline"
) -> list[TargetRow]:
    """Load at ``target_s`` per mode (median and p90 FTR), with ratios to the baseline."""
    loads: dict[str, dict[str, LoadAtTarget | None]] = {}
    for mode in modes_in_order(results, baseline):
        runs = [r for r in results if r.mode == mode]
        loads[mode] = {
            q: _at_target([(r.load, getattr(r.summary, f"ftr_{q}_s")) for r in runs], target_s)
            for q in ("p50", "p90")
        }
    base = loads.get(baseline, {"p50": None, "p90": None})
    return [
        TargetRow(
            mode, v["p50"], v["p90"], ratio(v["p50"], base["p50"]), ratio(v["p90"], base["p90"])
        )
        for mode, v in loads.items()
    ]


def _at_target(points: list[tuple[float, float | None]], target_s: float) -> LoadAtTarget | None:
    measured = [(load, f) for load, f in points if f is not None]
    return load_at_target(measured, target_s) if measured else None
