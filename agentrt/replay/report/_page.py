"""The results page: several replay reports combined into one Markdown page with headlines.

Run ``python -m agentrt.replay.report._page PAGE.md REPORT_DIR...`` (``scripts/results.sh`` does).
Per workload the headline gives each mode's load at the FTR target (median FTR) against
the baseline's, and each mode's median FTR at the baseline's *knee*: the lowest measured
load at which the baseline's median FTR is over the target (the highest load when it never
is, the lowest when it always is) — where the baseline breaks, what do the switches buy.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

_BOUND = {"exact": "", "at_least": "≥ ", "at_most": "≤ ", "unknown": "? "}


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def _runs(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """One entry per (mode, load): the pooled summaries of a report with repeats."""
    pooled: list[Mapping[str, Any]] | None = report.get("pooled")
    return pooled if pooled else list(report["runs"])


def knee_load(report: Mapping[str, Any]) -> float:
    """The lowest measured load at which the baseline's median FTR misses the target."""
    base = report["baseline"]
    target = report["ftr_target_s"]
    points = sorted(
        (r["load"], r["summary"]["ftr_p50_s"]) for r in _runs(report) if r["mode"] == base
    )
    if not points:
        points = sorted((r["load"], r["summary"]["ftr_p50_s"]) for r in _runs(report))
    for load, ftr in points:
        if ftr is None or ftr > target:
            return float(load)
    return float(points[-1][0])


def _median_ftr(report: Mapping[str, Any], mode: str, load: float) -> float | None:
    for r in _runs(report):
        if r["mode"] == mode and r["load"] == load:
            value = r["summary"]["ftr_p50_s"]
            return None if value is None else float(value)
    return None


def _load(cell: Mapping[str, Any] | None) -> str:
    if cell is None:
        return "misses at lowest load"
    return ("≥ " if cell["kind"] == "lower_bound" else "") + f"{cell['load']:.2f}"


def _ratio(cell: Mapping[str, Any] | None) -> str:
    return "—" if cell is None else f"{_BOUND[cell['bound']]}{cell['value']:.2f}x"


def _ratio_interval(report: Mapping[str, Any], mode: str, load: float) -> Mapping[str, Any] | None:
    """The 95% interval of ``mode``'s median FTR over the baseline's (reports with repeats)."""
    repeats = report.get("repeats") or {}
    for cell in repeats.get("cells", []):
        if cell["mode"] == mode and cell["load"] == load:
            found: Mapping[str, Any] | None = cell["ratios"].get("ftr_p50")
            return found
    return None


def headline(name: str, report: Mapping[str, Any]) -> list[str]:
    """Table rows (Markdown) of one workload's headline numbers."""
    knee = knee_load(report)
    base_ftr = _median_ftr(report, report["baseline"], knee)
    rows = []
    for row in report["load_at_target"]:
        ftr = _median_ftr(report, row["mode"], knee)
        vs = f"{ftr / base_ftr:.2f}x" if ftr is not None and base_ftr else "—"
        iv = _ratio_interval(report, row["mode"], knee)
        if iv is not None:
            vs = f"{iv['value']:.2f}x [{iv['low']:.2f}, {iv['high']:.2f}]"
        ftr_cell = "—" if ftr is None else f"{ftr:.2f}"
        rows.append(
            f"| {name} | {row['mode']} | {_load(row['median'])} | {_ratio(row['median_ratio'])} "
            f"| {knee:g} | {ftr_cell} | {vs} |"
        )
    return rows


def _section(name: str, folder: Path, report: Mapping[str, Any], page_dir: Path) -> list[str]:
    cfg = report.get("config", {})
    rel = Path(os.path.relpath(folder, page_dir))
    knee = knee_load(report)
    lines = [
        f"## {report.get('title', name)}",
        "",
        f"- command: `{cfg.get('command', '?')}`",
        f"- trace: {cfg.get('trace', '?')} (license: {cfg.get('license')})",
        f"- token scale {cfg.get('token_scale')}, tool factor {cfg.get('tool_factor')} "
        f"(tool sleeps {cfg.get('tool_sleep')}), seed {cfg.get('seed')}, "
        f"{cfg.get('arrivals')} arrivals",
        f"- engine: {cfg.get('engine')}",
        f"- FTR target {report['ftr_target_s']:.2f} s ({cfg.get('ftr_target_rule')}); "
        f"baseline knee: {knee:g} requests/s",
        f"- replay departures from the trace: {cfg.get('replay_fixes')}",
        "",
        f"![median FTR vs load]({rel / 'ftr_vs_load.png'}) "
        f"![KV hit rate]({rel / 'kv_hit_rate.png'})",
        f"![FTR CDF at the knee]({rel / f'ftr_cdf_load_{knee:g}.png'})",
        "",
    ]
    summary = (folder / "summary.md").read_text().splitlines()
    start = next((i for i, s in enumerate(summary) if s.startswith("## ")), len(summary))
    # One level down: the page's workload heading is the summary's title.
    lines += ["#" + s if s.startswith("## ") else s for s in summary[start:]]
    return lines


def render_page(folders: Sequence[Path], page: Path) -> str:
    """The page's Markdown for the reports in ``folders``."""
    reports = [(f.name, f, orjson.loads((f / "report.json").read_bytes())) for f in folders]
    machine = reports[0][2].get("machine", {}) if reports else {}
    lines = [
        "# Trace replay results",
        "",
        f"Produced by `scripts/results.sh` on {datetime.date.today().isoformat()} at commit "
        f"{_commit()}. Machine: {machine.get('cpu', 'CPU not recorded')}, "
        f"{machine.get('cores', machine.get('cpus'))} CPUs, "
        f"{machine.get('platform')}, Python {machine.get('python')}. Every run replays the same "
        "arrivals and forced tokens on the same engine, which starts each run from a cold "
        "prefix cache; only the orchestrator's switches differ (DESIGN.md, *Traces and "
        "metrics*). Token counts are scaled: read the scale beside each workload.",
        "",
        "## Headline",
        "",
        "Load at target: the highest Poisson rate whose median FTR meets the workload's FTR "
        "target, and its ratio to the baseline's (≥: every measured load met it; ? before a "
        "ratio: both loads are such lower bounds, so the ratio is unknown). Median FTR "
        "at the knee: each mode's median FTR at the lowest load where the baseline misses the "
        "target (the highest load when it never does), and its ratio to the baseline's "
        "(lower is better; with repeats, its 95% interval in brackets: a paired bootstrap "
        "over repeats and requests).",
        "",
        "| workload | mode | load @ target (req/s) | x baseline | knee (req/s) "
        "| median FTR at knee (s) | x baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, _folder, report in reports:
        lines += headline(name, report)
    lines.append("")
    for name, folder, report in reports:
        lines += [*_section(name, folder, report, page.parent), ""]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m agentrt.replay.report._page PAGE.md REPORT_DIR...", file=sys.stderr)
        return 2
    page = Path(argv[0])
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render_page([Path(a) for a in argv[1:]], page))
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
