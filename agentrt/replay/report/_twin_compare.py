"""The twin's validation table: the same replay on the real engine and on its twin, side by side.

Run ``python -m agentrt.replay.report._twin_compare REAL_DIR TWIN_DIR [--out FILE.md]
[--tolerance 0.15] [--check]`` on two report folders of ``agentrt replay`` made with the
same workload, seed, modes and loads (``scripts/twin_validate.sh`` makes them). Per
(mode, load) it gives both median FTRs and their ratio, which must be within the
tolerance; per mode and load, the change against the baseline on each engine, which must
agree. KV hit rates are shown beside them. ``--check`` exits 1 when a criterion fails.

When do two changes agree? When they have the same sign, or when the real engine cannot
tell the mode from the baseline and the twin's change is one the real engine could have
measured. A switch that does nothing on this workload (``token_log`` when no prompt
diverges) moves the real engine's median by its run-to-run noise, up to ±13% on 2 cores,
and the twin's by exactly 0: their signs agree by chance only. Two yardsticks tell a
change from noise, and either suffices:

- the real change's 95% interval (a paired bootstrap over repeats and requests,
  ``_intervals``) holds 0, and the twin's change lies inside it;
- the A/A control: when the real replay ran ``baseline_again`` (the baseline's switches
  under another name, at another place in each repeat than the baseline), its change against the
  baseline is what "no effect" measures on this machine, drift included. The noise band is
  the largest such change over the workload's loads; a real change within the band is
  noise, and a twin change within it agrees. The bootstrap cannot see this noise: it
  resamples requests, while a slower machine slows a whole run.

The control's own cells are the yardstick and are not judged for agreement (the twin, being
deterministic, must show exactly 0 there). With repeats, medians pool every repeat's
requests.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from ._intervals import Interval, make_draws, ratio_interval
from ._results import CONTROL_MODE


@dataclass(frozen=True, slots=True)
class Cell:
    """One (mode, load) on both engines; a change is relative to that engine's baseline."""

    mode: str
    load: float
    real_ftr_s: float | None
    twin_ftr_s: float | None
    real_hit: float | None
    twin_hit: float | None
    real_change: float | None = None
    twin_change: float | None = None
    real_change_low: float | None = None
    real_change_high: float | None = None
    noise_band: float | None = None
    """The largest |change| of the A/A control over the workload's loads (None: no control)."""
    control: bool = False

    @property
    def ratio(self) -> float | None:
        if self.real_ftr_s is None or self.twin_ftr_s is None or self.real_ftr_s <= 0:
            return None
        return self.twin_ftr_s / self.real_ftr_s

    def within(self, tolerance: float) -> bool:
        return self.ratio is not None and abs(self.ratio - 1) <= tolerance

    @property
    def same_sign(self) -> bool | None:
        """None for the baseline itself (no change to compare)."""
        if self.real_change is None or self.twin_change is None:
            return None
        return _sign(self.real_change) == _sign(self.twin_change)

    @property
    def agrees(self) -> bool | None:
        """Same sign, or a real change indistinguishable from noise by either yardstick
        (see the module docstring) and a twin change inside it. None for the baseline and
        for the A/A control."""
        if self.control:
            return None
        same = self.same_sign
        if same is None or same:
            return same
        real, twin = self.real_change, self.twin_change
        assert real is not None and twin is not None  # same_sign is not None
        lo, hi = self.real_change_low, self.real_change_high
        if lo is not None and hi is not None and lo <= 0 <= hi and lo <= twin <= hi:
            return True
        band = self.noise_band
        return band is not None and abs(real) <= band and abs(twin) <= band


def _sign(x: float) -> int:
    # Two equal medians divide to 1 +- one ulp: that is no change, not a tiny one.
    eps = 1e-9
    return (x > eps) - (x < -eps)


def _runs(report: Mapping[str, Any]) -> dict[tuple[str, float], Mapping[str, Any]]:
    """Summaries per (mode, load): pooled over repeats when the replay repeated."""
    entries = report.get("pooled") or report["runs"]
    return {(str(r["mode"]), float(r["load"])): r["summary"] for r in entries}


FtrValues = dict[int, dict[str, float]]
"""``{repeat: {request id: FTR}}`` of one (mode, load): the bootstrap's input."""


def _ftr_values(report: Mapping[str, Any]) -> dict[tuple[str, float], FtrValues]:
    out: dict[tuple[str, float], FtrValues] = {}
    for run in report["runs"]:
        per = out.setdefault((str(run["mode"]), float(run["load"])), {})
        per[int(run.get("repeat", 0))] = {
            str(rec["request_id"]): float(rec["ftr_s"])
            for rec in run.get("records", ())
            if rec.get("error") is None and rec.get("ftr_s") is not None
        }
    return out


def _change_interval(point: float, mine: FtrValues, base: FtrValues) -> Interval | None:
    """The interval of ``mine``'s median FTR over ``base``'s (``point``: that ratio),
    paired by repeat and request."""
    if not any(mine.values()) or not any(base.values()):
        return None
    ids = sorted({i for vals in (*mine.values(), *base.values()) for i in vals})
    draws = make_draws(sorted(set(mine) | set(base)), ids)
    return ratio_interval(point, draws, mine, base)


def compare(real: Mapping[str, Any], twin: Mapping[str, Any]) -> list[Cell]:
    """Cells for every (mode, load) either report has, in the real report's order.

    Raises:
        ValueError: the reports share no (mode, load).
    """
    r_runs, t_runs = _runs(real), _runs(twin)
    keys = [k for k in r_runs if k in t_runs]
    if not keys:
        raise ValueError("the two reports share no (mode, load): replay the same modes and loads")
    base = str(real.get("baseline", "baseline"))

    def ftr(
        runs: Mapping[tuple[str, float], Mapping[str, Any]], key: tuple[str, float]
    ) -> float | None:
        s = runs.get(key)
        return None if s is None or s.get("ftr_p50_s") is None else float(s["ftr_p50_s"])

    def change(
        runs: Mapping[tuple[str, float], Mapping[str, Any]], mode: str, load: float
    ) -> float | None:
        mine, ref = ftr(runs, (mode, load)), ftr(runs, (base, load))
        if mode == base or mine is None or not ref:
            return None
        return mine / ref - 1

    values = _ftr_values(real)
    controls = [change(r_runs, CONTROL_MODE, load) for mode, load in keys if mode == CONTROL_MODE]
    noise = [abs(c) for c in controls if c is not None]
    band = max(noise) if noise else None
    cells = []
    for mode, load in keys:
        rs, ts = r_runs[(mode, load)], t_runs[(mode, load)]
        real_change = change(r_runs, mode, load)
        iv = None
        if real_change is not None and (mode, load) in values and (base, load) in values:
            iv = _change_interval(real_change + 1, values[(mode, load)], values[(base, load)])
        cells.append(
            Cell(
                mode,
                load,
                ftr(r_runs, (mode, load)),
                ftr(t_runs, (mode, load)),
                rs.get("hit_rate"),
                ts.get("hit_rate"),
                real_change,
                change(t_runs, mode, load),
                None if iv is None else iv.low - 1,
                None if iv is None else iv.high - 1,
                band,
                mode == CONTROL_MODE,
            )
        )
    return cells


def _f(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def render(cells: Sequence[Cell], tolerance: float, title: str) -> str:
    """The comparison as Markdown, ending with the verdict on both criteria."""
    lines = [
        f"## {title}",
        "",
        f"Median FTR of the real engine and of its twin (simulated) per mode and load; the "
        f"twin must be within {tolerance:.0%} of the real engine, and every mode's change "
        "against the baseline must agree: the same sign on both, or, where the real "
        "engine cannot tell the change from noise (its 95% interval holds 0, or it lies "
        "within the A/A control's band), a twin change inside that interval or band (~: "
        "agrees within the real engine's noise). A/A: the control, the baseline's switches "
        "run again at another place in each repeat.",
        "",
        "| mode | load (req/s) | real FTR p50 (s) | twin FTR p50 (s) | twin / real "
        "| real vs baseline [95%] | twin vs baseline | agrees | real KV hit | twin KV hit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        ok = "✓" if c.within(tolerance) else "✗"
        mark = {None: "", True: "✓", False: "✗"}[c.same_sign]
        if c.same_sign is False and c.agrees:
            mark = "~"
        if c.control:
            mark = "A/A"
        interval = ""
        if c.real_change_low is not None and c.real_change_high is not None:
            interval = f" [{c.real_change_low:+.1%}, {c.real_change_high:+.1%}]"
        lines.append(
            f"| {c.mode} | {c.load:g} | {_f(c.real_ftr_s, '.2f')} | {_f(c.twin_ftr_s, '.2f')} "
            f"| {_f(c.ratio, '.2f')} {ok} | {_f(c.real_change, '+.1%')}{interval} "
            f"| {_f(c.twin_change, '+.1%')} | {mark} | {_f(c.real_hit, '.1%')} "
            f"| {_f(c.twin_hit, '.1%')} |"
        )
    within = sum(c.within(tolerance) for c in cells)
    signed = [c for c in cells if c.agrees is not None]
    same = sum(bool(c.same_sign) for c in signed)
    agree = sum(bool(c.agrees) for c in signed)
    band = cells[0].noise_band if cells else None  # one band per workload (``compare``)
    twin_control = max((abs(c.twin_change or 0) for c in cells if c.control), default=0.0)
    noise = (
        f"A/A control: the real engine's run-to-run noise band is ±{band:.1%} (the "
        "largest change of the baseline run again, over the loads); the twin's control "
        f"changes by at most {twin_control:.1%}. "
        if band is not None
        else ""
    )
    lines += [
        "",
        noise
        + f"Within {tolerance:.0%}: {within}/{len(cells)} cells; changes against the baseline "
        f"agree: {agree}/{len(signed)} ({same} with the same sign). Verdict: "
        + ("**pass**" if passes(cells, tolerance) else "**fail**"),
    ]
    return "\n".join(lines) + "\n"


def passes(cells: Sequence[Cell], tolerance: float) -> bool:
    return all(c.within(tolerance) for c in cells) and all(
        c.agrees for c in cells if c.agrees is not None
    )


def _load(folder: Path) -> Mapping[str, Any]:
    path = folder / "report.json"
    try:
        data: Mapping[str, Any] = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e
    return data


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m agentrt.replay.report._twin_compare")
    p.add_argument("real", type=Path, help="report folder of the real engine's replay")
    p.add_argument("twin", type=Path, help="report folder of the twin's replay")
    p.add_argument("--out", type=Path, default=None, help="Markdown file (also writes .json)")
    p.add_argument("--tolerance", type=float, default=0.15)
    p.add_argument("--title", default=None)
    p.add_argument("--check", action="store_true", help="exit 1 unless both criteria hold")
    args = p.parse_args(argv)
    try:
        real, twin = _load(args.real), _load(args.twin)
        cells = compare(real, twin)
    except ValueError as e:
        print(f"twin comparison: {e}", file=sys.stderr)
        return 2
    title = args.title or f"Twin vs real engine: {real.get('title', args.real.name)}"
    text = render(cells, args.tolerance, title)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        verdict = {"tolerance": args.tolerance, "pass": passes(cells, args.tolerance)}
        payload = {
            **verdict,
            "cells": [
                asdict(c) | {"ratio": c.ratio, "same_sign": c.same_sign, "agrees": c.agrees}
                for c in cells
            ],
        }
        args.out.with_suffix(".json").write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    return 0 if passes(cells, args.tolerance) or not args.check else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
