"""The Markdown summary of a replay report: one table per load, then load at target."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._intervals import METHOD, Interval, RepeatCell
from ._metrics import LoadAtTarget
from ._results import Ratio, ReplayRun, TargetRow, modes_in_order


def _s(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def _load(v: LoadAtTarget | None) -> str:
    if v is None:
        return "misses at lowest load"
    return f"≥ {v.load:.2f}" if v.kind == "lower_bound" else f"{v.load:.2f}"


_BOUND = {"exact": "", "at_least": "≥ ", "at_most": "≤ ", "unknown": "? "}


def _ratio(v: Ratio | None) -> str:
    return "—" if v is None else f"{_BOUND[v.bound]}{v.value:.2f}x"


def render_markdown(
    results: Sequence[ReplayRun],
    table: Sequence[TargetRow],
    *,
    title: str,
    target_s: float,
    baseline: str,
    config: Mapping[str, Any],
    cells: Sequence[RepeatCell] = (),
) -> str:
    """The summary text: configuration, a table per load (requests pooled over repeats),
    the medians with intervals when there are repeats, the load-at-target table."""
    lines = [f"# {title}", ""]
    if config:
        lines += [f"- **{k}**: {v}" for k, v in config.items()] + [""]
    order = {m: i for i, m in enumerate(modes_in_order(results, baseline))}
    for load in sorted({r.load for r in results}):
        runs = sorted((r for r in results if r.load == load), key=lambda r: order[r.mode])
        lines += [
            f"## Load {load:g} agent requests/s",
            "",
            "| mode | done | FTR p50 (s) | FTR p90 (s) | E2E p50 (s) | E2E p90 (s) "
            "| TTFT mean (s) | KV hit | KV max | tool overlap |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in runs:
            s = r.summary
            lines.append(
                f"| {r.mode} | {s.n_requests - s.n_failed}/{s.n_requests} "
                f"| {_s(s.ftr_p50_s)} | {_s(s.ftr_p90_s)} | {_s(s.e2e_p50_s)} "
                f"| {_s(s.e2e_p90_s)} | {_s(s.ttft_mean_s)} | {_pct(s.hit_rate)} "
                f"| {_pct(s.max_hit_rate)} | {_pct(s.overlap_share)} |"
            )
        lines.append("")
    if cells:
        lines += _interval_table(cells, baseline)
    lines += [
        f"## Load at FTR target ({target_s:g} s)",
        "",
        "Highest load whose FTR stays at or under the target, interpolated between "
        "measured loads; ≥ marks a lower bound (every measured load met it).",
        "",
        f"| mode | load @ p50 FTR | x {baseline} | load @ p90 FTR | x {baseline} |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {row.mode} | {_load(row.median)} | {_ratio(row.median_ratio)} "
        f"| {_load(row.p90)} | {_ratio(row.p90_ratio)} |"
        for row in table
    ]
    return "\n".join(lines) + "\n"


def _iv(v: Interval | None, unit: str = "") -> str:
    if v is None:
        return "—"
    return f"{v.value:.2f}{unit} [{v.low:.2f}, {v.high:.2f}]"


def _interval_table(cells: Sequence[RepeatCell], baseline: str) -> list[str]:
    lines = [
        "## Medians over repeats, with 95% intervals",
        "",
        f"Method: {METHOD}. Ratios divide by the {baseline}'s median at the same load; "
        "a ratio interval entirely below 1.00 is a gain beyond noise.",
        "",
        f"| load | mode | repeats | FTR p50 (s) | x {baseline} | E2E p50 (s) | x {baseline} |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        lines.append(
            f"| {c.load:g} | {c.mode} | {c.repeats} | {_iv(c.medians.get('ftr_p50'))} "
            f"| {_iv(c.ratios.get('ftr_p50'), 'x')} | {_iv(c.medians.get('e2e_p50'))} "
            f"| {_iv(c.ratios.get('e2e_p50'), 'x')} |"
        )
    return [*lines, ""]
