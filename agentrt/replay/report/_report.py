"""Write a replay report: JSON (everything), CSV (one row per mode x load), a Markdown
summary, and PNG plots (see ``_plots``)."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from agentrt.engine._machine import machine_info

from ._intervals import METHOD, pooled_runs, repeat_cells
from ._markdown import render_markdown
from ._plots import draw_plots
from ._records import RequestRecord
from ._results import ReplayRun, modes_in_order, target_table
from ._summary import RunSummary

REPORT_SCHEMA = "agentrt-replay-report/1"


@dataclass(frozen=True, slots=True)
class ReportFiles:
    json: Path
    csv: Path
    markdown: Path
    plots: tuple[Path, ...]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, RequestRecord):
        d = {
            "request_id": obj.request_id,
            "mode": obj.mode,
            "run_id": obj.run_id,
            "trace_ids": list(obj.trace_ids),
            "arrival_t": obj.arrival_t,
            "error": obj.error,
            "ftr_s": obj.ftr_s,
            "e2e_s": obj.e2e_s,
            "tool_time_s": obj.tool_time_s,
            "tool_overlap_s": obj.tool_overlap_s,
            # Token ids are left out: they only feed the theoretical maximum, already
            # in the summary, and would dwarf everything else.
            "calls": [
                {
                    f.name: getattr(c, f.name)
                    for f in dataclasses.fields(c)
                    if f.name not in ("prompt_ids", "output_ids")
                }
                | {"ttft_s": c.ttft_s}
                for c in obj.calls
            ],
            "tools": [dataclasses.asdict(t) for t in obj.tools],
            "final_token_times": list(obj.final_token_times),
        }
        return d
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_report(
    results: Sequence[ReplayRun],
    out_dir: str | Path,
    *,
    ftr_target_s: float,
    baseline: str = "baseline",
    title: str = "agentrt replay",
    config: Mapping[str, Any] | None = None,
    plots: bool = True,
) -> ReportFiles:
    """Write ``report.json``, ``summary.csv``, ``summary.md`` and plots into ``out_dir``.

    Args:
        results: every run, any order (one per mode x load).
        out_dir: created if missing.
        ftr_target_s: the FTR target for load-at-target and the plots' target line.
        baseline: the mode the ratios divide by.
        title: heading of the Markdown summary.
        config: the replay configuration (engine, model, block size, token scale, tool
            latency factor, seeds...), recorded verbatim beside the machine's facts.
        plots: also draw the PNGs (needs matplotlib).

    Raises:
        ValueError: on no results or a mode measured twice at one load.
    """
    if not results:
        raise ValueError("write_report needs at least one run")
    keys = [(r.mode, r.load, r.repeat) for r in results]
    if len(set(keys)) != len(keys):
        raise ValueError("results: some (mode, load, repeat) appears twice")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # With repeats, tables and plots use each (mode, load)'s requests pooled over them.
    pooled = pooled_runs(results)
    cells = repeat_cells(results, baseline) if len(pooled) < len(results) else []
    table = target_table(pooled, ftr_target_s, baseline)
    doc = {
        "schema": REPORT_SCHEMA,
        "title": title,
        "ftr_target_s": ftr_target_s,
        "baseline": baseline,
        "config": dict(config or {}),
        "machine": machine_info(),
        "load_at_target": table,
        "repeats": {"method": METHOD, "cells": cells} if cells else None,
        # Per (mode, load), every repeat's requests pooled (summaries only: the requests
        # are under "runs").
        "pooled": [{"mode": r.mode, "load": r.load, "summary": r.summary} for r in pooled]
        if cells
        else None,
        "runs": list(results),
    }
    json_path = out / "report.json"
    json_path.write_bytes(orjson.dumps(_jsonable(doc), option=orjson.OPT_INDENT_2))
    csv_path = out / "summary.csv"
    _write_csv(results, baseline, csv_path)
    md_path = out / "summary.md"
    md_path.write_text(
        render_markdown(
            pooled,
            table,
            title=title,
            target_s=ftr_target_s,
            baseline=baseline,
            config=config or {},
            cells=cells,
        )
    )
    pngs: tuple[Path, ...] = ()
    if plots:
        pngs = draw_plots(pooled, out, target_s=ftr_target_s, baseline=baseline, cells=cells)
    return ReportFiles(json_path, csv_path, md_path, pngs)


def _write_csv(results: Sequence[ReplayRun], baseline: str, path: Path) -> None:
    fields = [
        "mode",
        "load",
        "repeat",
        *(f.name for f in dataclasses.fields(RunSummary) if f.name != "mode"),
    ]
    order = {m: i for i, m in enumerate(modes_in_order(results, baseline))}
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in sorted(results, key=lambda r: (r.load, r.repeat, order[r.mode])):
            row = {"load": r.load, "repeat": r.repeat, **dataclasses.asdict(r.summary)}
            w.writerow({k: "" if row[k] is None else row[k] for k in fields})
