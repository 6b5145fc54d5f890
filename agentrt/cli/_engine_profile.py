"""``agentrt engine profile``: measure the embedded engine's step times and write a twin
cost profile (``--engine twin --profile FILE`` in ``agentrt replay`` reads it)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from pathlib import Path

from agentrt.engine import ModelNotAvailableError, VLLMEngine
from agentrt.engine._step_trace import TRACE_ENV
from agentrt.engine._twin_measured import profile_engine
from agentrt.engine._twin_probe import ProbeGrid
from agentrt.engine._twin_profile import dump_profile

from ._engine_options import add_engine_flags, engine_options


def add_profile_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", type=Path, default=Path("engine-profile.json"), help="profile file to write"
    )
    p.add_argument("--name", default=None, help="profile name (default: the file's stem)")
    p.add_argument("--quick", action="store_true", help="a few shapes only (a smoke test)")
    p.add_argument("--repeats", type=int, default=None, help="measurements per shape")
    p.add_argument("--seed", type=int, default=0, help="draws the probes' token ids")
    add_engine_flags(p, kv_cache_mib=512, max_model_len=4096)


async def _run(args: argparse.Namespace) -> int:
    grid = ProbeGrid.quick() if args.quick else ProbeGrid()
    if args.repeats is not None:
        grid = dataclasses.replace(grid, repeats=args.repeats)
    # The engine core writes its steps here and the fit uses them (see _twin_measured);
    # the file stays beside the profile for `agentrt engine check-trace`.
    trace = args.out.with_suffix(".steps.jsonl")
    trace.parent.mkdir(parents=True, exist_ok=True)
    trace.unlink(missing_ok=True)
    # The tracer lives in the tier scheduler. With no hints sent (probes send none) it
    # builds the same steps as vLLM's own scheduler.
    opts = dataclasses.replace(engine_options(args), cache_hints=True)
    print("starting the embedded engine (vLLM)...", file=sys.stderr, flush=True)
    before = os.environ.get(TRACE_ENV)
    os.environ[TRACE_ENV] = str(trace)  # read by the engine-core process when it starts
    try:
        engine = await VLLMEngine.start(opts)
    finally:
        _restore(before)
    try:
        profile = await profile_engine(
            engine,
            grid,
            name=args.name or args.out.stem,
            seed=args.seed,
            progress=lambda msg: print(msg, file=sys.stderr, flush=True),
            step_trace=trace,
        )
    finally:
        await engine.aclose()
    dump_profile(profile, args.out)
    print("| coefficient | value |\n|---|---|")
    for key, value in profile.coefficients.items():
        print(f"| {key} | {value:.4g} |")
    fit = profile.fit
    print(
        f"\n{fit.samples} measured steps; R^2 {fit.r2:.3f}; median |error| "
        f"{100 * fit.median_abs_rel_error:.1f}% (wall-clock timings: measure on a quiet machine)"
    )
    print(f"profile: {args.out}; engine steps: {trace}", file=sys.stderr)
    return 0


def _restore(value: str | None) -> None:
    if value is None:
        os.environ.pop(TRACE_ENV, None)
    else:
        os.environ[TRACE_ENV] = value


def main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except (ModelNotAvailableError, ValueError) as exc:
        print(f"agentrt engine profile: {exc}", file=sys.stderr)
        return 1
