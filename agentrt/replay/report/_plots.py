"""PNG plots of a replay report, drawn with matplotlib's Agg canvas (no display, no
pyplot global state)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

from ._intervals import RepeatCell
from ._results import ReplayRun, modes_in_order

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure() -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def draw_plots(
    results: Sequence[ReplayRun],
    out_dir: Path,
    *,
    target_s: float,
    baseline: str,
    cells: Sequence[RepeatCell] = (),
) -> tuple[Path, ...]:
    """FTR CDF per load, median FTR vs load (with 95% intervals when ``cells`` holds
    repeats), each mode's median FTR as a ratio to the baseline's (only with repeats:
    ``ftr_ratio_vs_load.png``), and KV hit rate vs its maximum."""
    modes = modes_in_order(results, baseline)
    paths = [
        plot_ftr_cdf(
            [r for r in results if r.load == load],
            modes,
            out_dir / f"ftr_cdf_load_{load:g}.png",
            target_s=target_s,
        )
        for load in sorted({r.load for r in results})
    ]
    paths.append(
        plot_ftr_vs_load(
            results, modes, out_dir / "ftr_vs_load.png", target_s=target_s, cells=cells
        )
    )
    if any("ftr_p50" in c.ratios for c in cells):
        paths.append(plot_ratio_vs_load(cells, modes, out_dir / "ftr_ratio_vs_load.png"))
    paths.append(plot_hit_rates(results, modes, out_dir / "kv_hit_rate.png"))
    return tuple(paths)


def plot_ftr_cdf(
    runs: Sequence[ReplayRun], modes: Sequence[str], path: Path, *, target_s: float
) -> Path:
    """Empirical CDF of FTR per mode at one load."""
    fig = _figure()
    ax = fig.add_subplot()
    for mode in modes:
        for run in (r for r in runs if r.mode == mode):
            ftr = sorted(f for f in (rec.ftr_s for rec in run.records) if f is not None)
            if ftr:
                ax.step(
                    ftr, [(i + 1) / len(ftr) for i in range(len(ftr))], where="post", label=mode
                )
    ax.axvline(target_s, color="grey", linestyle="--", linewidth=1, label="target")
    load = runs[0].load if runs else 0.0
    ax.set(
        xlabel="FTR (s)",
        ylabel="share of requests",
        ylim=(0, 1.02),
        title=f"FTR CDF at {load:g} agent requests/s",
    )
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_ftr_vs_load(
    results: Sequence[ReplayRun],
    modes: Sequence[str],
    path: Path,
    *,
    target_s: float,
    cells: Sequence[RepeatCell] = (),
) -> Path:
    """Median FTR (solid, with 95% interval bars from ``cells``) and p90 (dotted) against
    offered load, per mode."""
    fig = _figure()
    ax = fig.add_subplot()
    bars = {(c.mode, c.load): c.medians["ftr_p50"] for c in cells if "ftr_p50" in c.medians}
    for mode in modes:
        runs = sorted((r for r in results if r.mode == mode), key=lambda r: r.load)
        pts = [(r.load, r.summary.ftr_p50_s) for r in runs if r.summary.ftr_p50_s is not None]
        if not pts:
            continue
        (line,) = ax.plot(*zip(*pts, strict=True), marker="o", label=f"{mode} p50")
        ivs = [(x, y, bars[(mode, x)]) for x, y in pts if (mode, x) in bars]
        if ivs:
            ax.errorbar(
                [x for x, _, _ in ivs],
                [y for _, y, _ in ivs],
                yerr=[
                    [max(0.0, y - i.low) for _, y, i in ivs],
                    [max(0.0, i.high - y) for _, y, i in ivs],
                ],
                fmt="none",
                ecolor=line.get_color(),
                capsize=3,
            )
        p90 = [(r.load, r.summary.ftr_p90_s) for r in runs if r.summary.ftr_p90_s is not None]
        ax.plot(*zip(*p90, strict=True), linestyle=":", color=line.get_color())
    ax.axhline(target_s, color="grey", linestyle="--", linewidth=1, label="target")
    ax.set(
        xlabel="offered load (agent requests/s)",
        ylabel="FTR (s)",
        title="FTR vs load (solid p50 with 95% intervals, dotted p90)"
        if bars
        else "FTR vs load (solid p50, dotted p90)",
    )
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_ratio_vs_load(cells: Sequence[RepeatCell], modes: Sequence[str], path: Path) -> Path:
    """Each mode's median FTR over the baseline's against load, with its 95% interval.

    The two reference lines are issue 14's rule for a switch alone: a median at or under
    1.00x, and an interval whose upper end stays at or under 1.05x. Modes are nudged
    sideways a little so that their bars do not hide one another."""
    fig = _figure()
    ax = fig.add_subplot()
    shown = [m for m in modes if any(c.mode == m and "ftr_p50" in c.ratios for c in cells)]
    loads = sorted({c.load for c in cells})
    step = min((b - a for a, b in pairwise(loads)), default=1.0)
    for k, mode in enumerate(shown):
        mine = sorted(
            (c for c in cells if c.mode == mode and "ftr_p50" in c.ratios), key=lambda c: c.load
        )
        nudge = (k - (len(shown) - 1) / 2) * step * 0.4 / len(shown)
        xs = [c.load + nudge for c in mine]
        ivs = [c.ratios["ftr_p50"] for c in mine]
        ax.errorbar(
            xs,
            [i.value for i in ivs],
            yerr=[
                [max(0.0, i.value - i.low) for i in ivs],
                [max(0.0, i.high - i.value) for i in ivs],
            ],
            marker="o",
            capsize=3,
            label=mode,
        )
    ax.axhline(1.0, color="grey", linewidth=1)
    ax.axhline(1.05, color="grey", linestyle="--", linewidth=1, label="1.05x")
    low, high = ax.get_ylim()
    ax.set_ylim(low, max(high, 1.08))
    ax.set(
        xlabel="offered load (agent requests/s)",
        ylabel="median FTR / baseline's",
        title="Median FTR against the baseline's (95% intervals)",
    )
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_hit_rates(results: Sequence[ReplayRun], modes: Sequence[str], path: Path) -> Path:
    """Measured KV hit rate (bars) and its theoretical maximum (black ticks), per mode
    and load."""
    fig = _figure()
    ax = fig.add_subplot()
    loads = sorted({r.load for r in results})
    width = 0.8 / max(1, len(modes))
    by_key = {(r.mode, r.load): r.summary for r in results}
    for i, mode in enumerate(modes):
        xs, hit, cap = [], [], []
        for j, load in enumerate(loads):
            s = by_key.get((mode, load))
            if s is None or s.hit_rate is None:
                continue
            xs.append(j + (i - (len(modes) - 1) / 2) * width)
            hit.append(100 * s.hit_rate)
            cap.append(None if s.max_hit_rate is None else 100 * s.max_hit_rate)
        ax.bar(xs, hit, width=width * 0.9, label=mode)
        ticks = [(x, c) for x, c in zip(xs, cap, strict=True) if c is not None]
        if ticks:
            ax.hlines(
                [c for _, c in ticks],
                [x - width / 2 for x, _ in ticks],
                [x + width / 2 for x, _ in ticks],
                colors="black",
                linewidth=2,
            )
    ax.set_xticks(range(len(loads)), [f"{load:g}" for load in loads])
    ax.set(
        xlabel="offered load (agent requests/s)",
        ylabel="KV hit rate (%)",
        ylim=(0, 105),
        title="KV hit rate (bars) vs theoretical maximum (black)",
    )
    ax.legend(fontsize="small", loc="lower right")
    return _save(fig, path)
