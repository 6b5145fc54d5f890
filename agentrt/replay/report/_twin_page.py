"""The "twin" section of the results page: GPU what-ifs and validation, all simulated.

Run ``python -m agentrt.replay.report._twin_page PAGE.md [--whatif DIR]...
[--validation FILE.md]...`` (``scripts/twin_results.sh`` does). The section goes between
two marker comments in PAGE (appended when they are missing), so regenerating the rest of
the page and this section are independent. Per what-if sweep: the headline table (load at
the FTR target and median FTR at the baseline's knee, per mode, against the baseline), the
paper's reported figures beside it, a plot labelled simulated, and the twin's own speed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from ._page import headline, knee_load

BEGIN = "<!-- twin:begin -->"
END = "<!-- twin:end -->"

PAPER = (
    "Sutradhara (arXiv 2601.12967, measured on A100 GPUs with vLLM): up to **+77% load** at "
    "the same median FTR, or up to **-15% median FTR** at the same load, for all three "
    "optimizations together."
)


def _report(folder: Path) -> Mapping[str, Any]:
    data: Mapping[str, Any] = orjson.loads((folder / "report.json").read_bytes())
    return data


def plot_ftr(report: Mapping[str, Any], path: Path, title: str) -> Path:
    """Median FTR vs load per mode, titled as simulated."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    modes = list(dict.fromkeys(str(r["mode"]) for r in report["runs"]))
    for mode in modes:
        pts = sorted(
            (float(r["load"]), r["summary"]["ftr_p50_s"])
            for r in report["runs"]
            if r["mode"] == mode and r["summary"]["ftr_p50_s"] is not None
        )
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=mode)
    ax.axhline(report["ftr_target_s"], color="black", linestyle=":", label="FTR target")
    ax.set_xlabel("agent requests/s")
    ax.set_ylabel("median FTR (s)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    return path


def _speed(report: Mapping[str, Any], folder: Path) -> str:
    engine = report.get("config", {}).get("engine", {})
    speed = engine.get("twin_speed") or {}
    sweep = folder / "sweep.json"
    total = orjson.loads(sweep.read_bytes()).get("command_wall_s") if sweep.is_file() else None
    parts = [
        f"{speed.get('simulated_s', 0):.0f} simulated s in {speed.get('wall_s', 0):.0f} wall s of "
        f"runs ({speed.get('simulated_s_per_wall_s')} simulated s per wall s, "
        f"{speed.get('steps')} engine steps)"
    ]
    if total is not None:
        parts.append(f"whole command {total:.0f} s wall")
    return "; ".join(parts)


def whatif_section(folder: Path, page_dir: Path) -> list[str]:
    """One what-if sweep: settings, headline table, plot and speed."""
    report = _report(folder)
    title = str(report.get("title", folder.name))
    cfg = report.get("config", {})
    engine = cfg.get("engine", {})
    cost = engine.get("cost", {})
    plot = plot_ftr(report, folder / "twin_ftr_vs_load.png", title)
    rel = os.path.relpath(plot, page_dir)
    knee = knee_load(report)
    lines = [
        f"### {title}",
        "",
        f"- command: `{cfg.get('command', '?')}`",
        f"- model {engine.get('model')} on {cost.get('tensor_parallel', 1)} x "
        f"{cost.get('device', {}).get('name')}; {engine.get('num_blocks')} KV blocks of "
        f"{engine.get('block_size')} tokens; token budget (chunk) "
        f"{engine.get('max_num_batched_tokens')}, max_num_seqs {engine.get('max_num_seqs')}",
        f"- trace: {cfg.get('trace')}; tool factor {cfg.get('tool_factor')}; seed "
        f"{cfg.get('seed')}; FTR target {report['ftr_target_s']:.2f} s "
        f"({cfg.get('ftr_target_rule')}); baseline knee {knee:g} requests/s",
        f"- twin speed: {_speed(report, folder)}",
        "",
        "| workload | mode | load @ target (req/s) | x baseline | knee (req/s) "
        "| median FTR at knee (s) | x baseline |",
        "|---|---|---|---|---|---|---|",
        *headline(f"{folder.name} (simulated)", report),
        "",
        f"![median FTR vs load, simulated]({rel})",
        "",
    ]
    return lines


def render_section(whatifs: Sequence[Path], validations: Sequence[Path], page_dir: Path) -> str:
    lines = [
        BEGIN,
        "## Twin: GPU what-ifs and validation (simulated)",
        "",
        "Every figure in this section is **simulated** by the vLLM twin (`--engine twin`): "
        "vLLM's own scheduler and KV cache manager (with agentrt's tier scheduler) stepped on "
        "a virtual clock, each step taking the time a cost profile gives for exactly what the "
        "scheduler put in it (docs/TWIN.md). GPU profiles are rooflines over public vendor "
        "figures with stated efficiency assumptions; they are not measurements.",
        "",
        PAPER,
        "",
    ]
    if validations:
        lines += ["### Validation against the real engine (this machine)", ""]
        for v in validations:
            text = v.read_text().splitlines()
            lines += ["##" + s if s.startswith("## ") else s for s in text] + [""]
    else:
        lines += [
            "### Validation against the real engine",
            "",
            "Not run yet: it needs a quiet machine. `scripts/twin_validate.sh` profiles the "
            "embedded engine, replays the web-search and WEKA workloads on it and on its twin "
            "with the same arrivals, and writes the comparison tables that belong here.",
            "",
        ]
    for folder in whatifs:
        lines += whatif_section(folder, page_dir)
    lines.append(END)
    return "\n".join(lines) + "\n"


def slim_report(folder: Path) -> None:
    """Drop the per-request records from a sweep's report.json (the section needs only the
    per-run summaries; records of hundreds of requests per run weigh tens of MB)."""
    path = folder / "report.json"
    report = orjson.loads(path.read_bytes())
    for run in report["runs"]:
        run["records"] = []
    report["records_dropped"] = "per-request records dropped to keep the repository small"
    path.write_bytes(orjson.dumps(report))


def replace_section(page: str, section: str) -> str:
    """``page`` with the marked twin section replaced (or appended)."""
    if BEGIN in page and END in page:
        head, rest = page.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        return head + section.rstrip("\n") + tail
    return page.rstrip("\n") + "\n\n" + section


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m agentrt.replay.report._twin_page")
    p.add_argument("page", type=Path)
    p.add_argument("--whatif", type=Path, action="append", default=[], help="a sweep's folder")
    p.add_argument("--validation", type=Path, action="append", default=[], help="a comparison .md")
    p.add_argument("--slim", action="store_true", help="drop per-request records of sweeps")
    args = p.parse_args(argv)
    if args.slim:
        for folder in args.whatif:
            slim_report(folder)
    page_dir = args.page.resolve().parent
    section = render_section(
        [w.resolve() for w in args.whatif], [v.resolve() for v in args.validation], page_dir
    )
    old = args.page.read_text() if args.page.is_file() else ""
    args.page.write_text(replace_section(old, section))
    print(args.page)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
