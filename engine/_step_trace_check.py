"""Pricing a real engine's step trace with a cost model: is the twin's clock right?

A replay's median FTR on the twin can only be as right as each step's price. This puts
every traced step (``_step_trace``) beside what a cost model says it costs, grouped by
kind (prefill only, decode batch of N, prefill mixed with N decodes), so a wrong term
shows up as a wrong group instead of a wrong median. ``agentrt engine check-trace``
prints it; docs/TWIN.md shows what it found.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ._step_trace import TracedStep
from ._twin_cost import CostModel, StepShape

_BATCHES = ((1, 1), (2, 2), (3, 4), (5, 8), (9, 16), (17, 10**9))


def _kind(shape: StepShape) -> tuple[tuple[str, int], str]:
    """The kind's sort key (family, smallest batch) and its label."""
    if not shape.decodes:
        return ("prefill", 0), "prefill"
    n = shape.num_decodes
    lo, hi = next(b for b in _BATCHES if b[0] <= n <= b[1])
    batch = str(lo) if lo == hi else (f"{lo}-{hi}" if hi < 10**9 else f"{lo}+")
    family = "mixed" if shape.prefills else "decode"
    return (family, lo), f"{family} x{batch}"


def step_kind(shape: StepShape) -> str:
    """``prefill``, ``decode xN`` or ``mixed xN`` with N bucketed (1, 2, 3-4, 5-8, ...)."""
    return _kind(shape)[1]


@dataclass(frozen=True, slots=True)
class KindRow:
    """One kind of step: how many, their real and priced medians and totals."""

    kind: str
    steps: int
    real_p50_s: float
    model_p50_s: float
    real_total_s: float
    model_total_s: float

    @property
    def ratio(self) -> float:
        """Model over real, summed over the kind's steps (1.0: priced right)."""
        return self.model_total_s / self.real_total_s if self.real_total_s > 0 else float("nan")


@dataclass(frozen=True, slots=True)
class TraceCheck:
    """Every kind's row, and the whole trace's row (kind ``all``)."""

    rows: tuple[KindRow, ...]
    total: KindRow

    def table(self) -> str:
        head = (
            "| step kind | steps | real p50 (ms) | model p50 (ms) | real total (s) "
            "| model total (s) | model / real |\n|---|---|---|---|---|---|---|"
        )
        lines = [head]
        for r in (*self.rows, self.total):
            lines.append(
                f"| {r.kind} | {r.steps} | {1000 * r.real_p50_s:.1f} | "
                f"{1000 * r.model_p50_s:.1f} | {r.real_total_s:.2f} | "
                f"{r.model_total_s:.2f} | {r.ratio:.2f} |"
            )
        return "\n".join(lines)


def _row(kind: str, steps: Sequence[TracedStep], cost: CostModel) -> KindRow:
    real = [s.busy_s for s in steps]
    model = [cost.step_time(s.shape) for s in steps]
    return KindRow(
        kind, len(steps), statistics.median(real), statistics.median(model), sum(real), sum(model)
    )


def check_trace(steps: Sequence[TracedStep], cost: CostModel) -> TraceCheck:
    """Price ``steps`` with ``cost``, per kind (decode, mixed, prefill; by batch within each).

    Raises:
        ValueError: an empty trace.
    """
    if not steps:
        raise ValueError("the step trace is empty")
    groups: dict[tuple[str, int], tuple[str, list[TracedStep]]] = {}
    for s in steps:
        key, label = _kind(s.shape)
        groups.setdefault(key, (label, []))[1].append(s)
    rows = tuple(_row(label, members, cost) for _, (label, members) in sorted(groups.items()))
    return TraceCheck(rows, _row("all", steps, cost))
