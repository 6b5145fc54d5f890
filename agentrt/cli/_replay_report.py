"""What every ``agentrt replay`` does once it has an engine source: replay every mode at
every load on it, and write the report with the replay's configuration."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentrt.replay.report._intervals import pooled_runs
from agentrt.replay.report._report import ReportFiles, write_report
from agentrt.replay.report._results import ReplayRun
from agentrt.replay.run._driver import Deadlines, default_ftr_target, replay_all
from agentrt.replay.run._plan import ReplayPlan, tool_latency_summary
from agentrt.replay.run._sources import EngineSource, Load, ReplayMode
from agentrt.replay.trace._trace import Trace

from ._progress import ProgressBar


async def replay_source(
    args: argparse.Namespace,
    plan: ReplayPlan,
    modes: Sequence[ReplayMode],
    loads: Sequence[Load],
    source: EngineSource,
) -> list[ReplayRun]:
    """Every mode at every load on ``source``, with the replay options of ``args``."""
    return await replay_all(
        plan,
        modes,
        loads,
        source,
        deadlines=Deadlines(args.ttft_deadline, args.tbt_deadline),
        progress=ProgressBar(),
        timeout_s=args.run_timeout,
        repeats=args.repeats,
    )


def ftr_target(args: argparse.Namespace, runs: Sequence[ReplayRun]) -> float:
    """``--ftr-target``, else ``--ftr-target-factor`` x the baseline's median at the
    lowest load (repeats pooled)."""
    if args.ftr_target is not None:
        return float(args.ftr_target)
    return default_ftr_target(pooled_runs(runs), factor=args.ftr_target_factor)


def write_replay_report(
    args: argparse.Namespace,
    trace: Trace,
    plan: ReplayPlan,
    runs: Sequence[ReplayRun],
    engine_desc: dict[str, Any],
    out: Path,
    *,
    target: float | None = None,
    title: str | None = None,
) -> ReportFiles:
    """The replay's report of ``runs`` in ``out``, its configuration from ``args``
    (``target`` None: :func:`ftr_target`)."""
    factor = args.ftr_target_factor
    if target is None:
        target = ftr_target(args, runs)
    h = trace.header
    config: dict[str, Any] = {
        "command": "agentrt " + shlex.join(sys.argv[1:]),
        "trace": f"{h.source}: {len(trace)} agent requests",
        "license": h.license,
        "token_scale": h.token_scale,
        "hash_block_tokens": h.hash_block_tokens,
        "tool_factor": args.tool_factor,
        "tool_sleep": tool_latency_summary(plan),
        "seed": args.seed,
        "arrivals": "recorded" if args.recorded else "poisson",
        "repeats": args.repeats,
        "loads": sorted({run.load for run in runs}),
        "modes": list(args.modes),
        "engine": engine_desc,
        "ftr_target_s": target,
        "ftr_target_rule": "given"
        if args.ftr_target is not None
        else f"{factor:g} x baseline median FTR at the lowest load",
        "fluidity_deadlines_s": {"ttft": args.ttft_deadline, "tbt": args.tbt_deadline},
        "replay_fixes": dataclasses.asdict(plan.stats),
        "trace_description": h.description,
    }
    return write_report(
        runs,
        out,
        ftr_target_s=target,
        title=title or args.title or f"agentrt replay: {h.source}",
        config=config,
        plots=not args.no_plots,
    )
