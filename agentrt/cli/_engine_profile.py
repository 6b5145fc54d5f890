"""``agentrt engine profile``: measure the embedded engine's step times and write a twin
cost profile (``--engine twin --profile FILE`` in ``agentrt replay`` reads it)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path

from agentrt.engine import ModelNotAvailableError, VLLMEngine
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
    print("starting the embedded engine (vLLM)...", file=sys.stderr, flush=True)
    engine = await VLLMEngine.start(engine_options(args))
    try:
        profile = await profile_engine(
            engine,
            grid,
            name=args.name or args.out.stem,
            seed=args.seed,
            progress=lambda msg: print(msg, file=sys.stderr, flush=True),
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
    print(f"profile: {args.out}", file=sys.stderr)
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except (ModelNotAvailableError, ValueError) as exc:
        print(f"agentrt engine profile: {exc}", file=sys.stderr)
        return 1
