"""``agentrt replay --engine twin --replicas N --router a,b``: router policies compared.

Each policy replays the same plan (trace, arrivals, modes, loads) on ``--replicas`` fresh
twins behind a model of that vllm-router policy, and gets its own report in
``OUT/<policy>/``; ``OUT/routers.{md,json,png}`` puts them side by side. Every policy is
held to one FTR target: ``--ftr-target``, else the one the first policy's runs give.
Every figure is simulated.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from agentrt.replay.report._routers import RouterRow, router_rows, write_routers
from agentrt.replay.run._plan import ReplayPlan, build_plan
from agentrt.replay.run._sources import Load, ReplayMode
from agentrt.replay.trace._trace import Trace

from ._replay_report import ftr_target, replay_source, write_replay_report
from ._replay_twin import twin_source


async def run_routers(
    args: argparse.Namespace, trace: Trace, modes: Sequence[ReplayMode], loads: Sequence[Load]
) -> int:
    """Replay ``trace`` once per policy in ``args.router``; write every report."""
    plan: ReplayPlan | None = None
    target: float | None = None
    rows: list[RouterRow] = []
    engines: dict[str, Any] = {}
    for policy in args.router:
        source = twin_source(args, policy)
        if plan is None:
            plan = build_plan(trace, source.tokenizer, seed=args.seed, tool_factor=args.tool_factor)
        print(f"router {policy}: {args.replicas} replicas", file=sys.stderr, flush=True)
        runs = await replay_source(args, plan, modes, loads, source)
        if target is None:
            target = ftr_target(args, runs)
        engines[policy] = source.describe()
        title = (
            f"agentrt replay: {trace.header.source}, {args.replicas} replicas, router "
            f"{policy} (simulated)"
        )
        write_replay_report(
            args, trace, plan, runs, engines[policy], args.out / policy, target=target, title=title
        )
        rows += router_rows(policy, runs)
    config = {
        "command": "agentrt " + shlex.join(sys.argv[1:]),
        "trace": f"{trace.header.source}: {len(trace)} agent requests",
        "replicas": args.replicas,
        "routers": list(args.router),
        "modes": list(args.modes),
        "seed": args.seed,
        "tool_factor": args.tool_factor,
        "ftr_target_s": target,
        "engines": engines,
    }
    title = f"Router policies over {args.replicas} twin replicas: {trace.header.source}"
    files = write_routers(
        rows,
        args.out,
        replicas=args.replicas,
        title=title,
        config=config,
        plots=not args.no_plots,
    )
    print(files[1].read_text())
    print(f"report: {args.out}", file=sys.stderr)
    return 0
