"""Fitting ``LinearStepCost`` to measured steps: non-negative least squares.

A step cannot take negative time for doing more work, so every coefficient is kept
``>= 0`` (Lawson-Hanson's active-set method, small enough to write here with numpy).
Each step is weighted by the inverse of its time, so the fit minimises relative errors:
a replay is mostly 50 ms decode steps, and an unweighted fit would trade their accuracy
for a better fit of the few multi-second prefills.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._twin_cost import FEATURES, LinearStepCost, StepShape, features


@dataclass(frozen=True, slots=True)
class MeasuredStep:
    """One measurement: a step's shape and the seconds it took."""

    shape: StepShape
    seconds: float


@dataclass(frozen=True, slots=True)
class Fit:
    """The fitted cost model and how well it explains the samples."""

    cost: LinearStepCost
    r2: float
    median_abs_rel_error: float
    samples: int


def nnls(a: np.ndarray, b: np.ndarray, max_iter: int = 200) -> np.ndarray:
    """``argmin ||a x - b||`` subject to ``x >= 0`` (Lawson and Hanson, 1974)."""
    n = a.shape[1]
    x = np.zeros(n)
    active = np.zeros(n, dtype=bool)  # True: free to move (the "passive" set)
    for _ in range(max_iter):
        w = a.T @ (b - a @ x)
        candidates = ~active & (w > 1e-12 * max(1.0, float(np.abs(w).max(initial=0.0))))
        if not candidates.any():
            break
        active[int(np.argmax(np.where(candidates, w, -np.inf)))] = True
        while True:
            z = np.zeros(n)
            z[active] = np.linalg.lstsq(a[:, active], b, rcond=None)[0]
            if (z[active] > 0).all():
                x = z
                break
            bad = active & (z <= 0)
            alpha = float(np.min(x[bad] / (x[bad] - z[bad])))
            x = x + alpha * (z - x)
            active &= x > 1e-15
    return np.clip(x, 0.0, None)


def fit_steps(steps: Sequence[MeasuredStep]) -> Fit:
    """Fit ``LinearStepCost`` to ``steps``.

    Raises:
        ValueError: fewer samples than coefficients.
    """
    if len(steps) < len(FEATURES):
        raise ValueError(f"need at least {len(FEATURES)} measured steps, got {len(steps)}")
    a = np.array([features(s.shape) for s in steps], dtype=float)
    b = np.array([s.seconds for s in steps], dtype=float)
    weight = 1.0 / np.maximum(b, 1e-6)
    aw, bw = a * weight[:, None], b * weight
    # Scale columns to unit norm so the active-set tolerances mean the same for each.
    norms = np.linalg.norm(aw, axis=0)
    norms[norms == 0] = 1.0
    coef = nnls(aw / norms, bw) / norms
    cost = LinearStepCost.from_coefficients(coef.tolist())
    pred = a @ coef
    total = float(((b - b.mean()) ** 2).sum())
    r2 = 1.0 - float(((b - pred) ** 2).sum()) / total if total > 0 else 1.0
    rel = statistics.median(abs(p - y) / y for p, y in zip(pred, b, strict=True) if y > 0)
    return Fit(cost, r2, float(rel), len(steps))
