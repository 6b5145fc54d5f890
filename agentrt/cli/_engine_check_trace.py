"""``agentrt engine check-trace``: price a real engine's step trace with a twin cost profile.

The engine writes the trace when ``AGENTRT_STEP_TRACE`` names a file (``agentrt engine
profile`` keeps one beside its profile; set the variable for ``agentrt replay --engine
embedded`` or ``agentrt engine serve`` to trace a workload). The table says, per kind of
step, whether the profile prices the steps that workload made.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from agentrt.engine._step_trace import load_steps
from agentrt.engine._step_trace_check import check_trace
from agentrt.engine._twin_build import TwinOverrides, twin_options


def add_check_trace_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("trace", type=Path, help="a step trace (JSON lines) written by the engine")
    p.add_argument(
        "--profile", required=True, help="a measured profile file or a bundled GPU profile"
    )
    p.add_argument(
        "--model", default=None, help="model folder or bundled config (roofline profiles)"
    )
    p.add_argument("--tensor-parallel", type=int, default=1, help="GPUs per engine (roofline)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")


def main(args: argparse.Namespace) -> int:
    try:
        steps = load_steps(args.trace)
        options = twin_options(
            args.profile, TwinOverrides(model=args.model, tensor_parallel=args.tensor_parallel)
        )
        check = check_trace(steps, options.cost)
    except (OSError, ValueError) as exc:
        print(f"agentrt engine check-trace: {exc}", file=sys.stderr)
        return 1
    print(check.table())
    if args.json is not None:
        rows = [{**asdict(r), "model_over_real": r.ratio} for r in (*check.rows, check.total)]
        args.json.write_text(json.dumps({"trace": str(args.trace), "rows": rows}, indent=1) + "\n")
    return 0
