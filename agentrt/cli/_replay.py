"""``agentrt replay``: replay a trace per mode and load, then write and print the report.

Examples::

    agentrt replay --synthetic --synthetic-requests 12 --token-scale 0.25 \\
        --modes baseline,all --rates 0.2,0.4,0.8 --engine embedded --out out/websearch
    agentrt replay --weka /work/shared/traces/weka-claude-code --max-conversations 8 \\
        --token-scale 0.015625 --max-tool-latency 4 --max-calls 6 --max-requests 12 \\
        --rates 0.1,0.2,0.4 --out out/weka
    agentrt replay --trace traces/sample-websearch.jsonl --engine scripted --rates 1,2,4

With no ``--ftr-target``, the target is ``--ftr-target-factor`` (default 2) times the
baseline's median FTR at the lowest load (the first mode's when the baseline is not
replayed). ``--engine scripted`` runs on virtual time: instant, and exact to its timing
model.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from agentrt._run_priority import DEFAULT_MAX_GAP, RUN_PRIORITIES
from agentrt.engine import EngineError, TimingModel
from agentrt.replay.report._results import CONTROL_MODE
from agentrt.replay.run._plan import build_plan
from agentrt.replay.run._sources import (
    MODE_NAMES,
    EngineSource,
    Load,
    PoissonLoad,
    RecordedLoad,
    ScriptedSource,
    SharedSource,
    replay_mode,
)

from ._engine_options import LIVE_TTL_HELP
from ._replay_report import replay_source, write_replay_report
from ._replay_routers import run_routers
from ._replay_twin import add_twin_arguments, check_replica_arguments, twin_source
from ._replay_workload import load_source

T = TypeVar("T")
EMBEDDED_KV_CACHE_BYTES = 512 * 2**20
"""The embedded engine's KV cache when ``--kv-cache-bytes`` is not given."""
_SIZE = re.compile(r"^\s*([0-9.]+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


def _list(kind: Callable[[str], T]) -> Callable[[str], list[T]]:
    def parse(text: str) -> list[T]:
        try:
            return [kind(p) for p in text.split(",") if p.strip()]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None

    return parse


def _bytes(text: str) -> int:
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 512MiB, 1G, 268435456)")
    power = " kmgt".index((m.group(2) or " ").lower())
    return int(float(m.group(1)) * 1024**power)


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer ``>= low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {low}")
        return value

    return parse


def _fraction(text: str) -> float:
    """A number, or ``a/b`` (``1/64``)."""
    num, _, den = text.partition("/")
    value = float(num) / float(den) if den else float(num)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    """Options of ``agentrt replay``."""
    src = parser.add_argument_group("workload (choose one)")
    one = src.add_mutually_exclusive_group(required=True)
    one.add_argument("--trace", type=Path, help="an agentrt-trace/1 JSON Lines file")
    one.add_argument("--weka", type=Path, help="WEKA Claude Code folder or trace_*.json.gz")
    one.add_argument("--mooncake", type=Path, help="Mooncake conversation_trace.jsonl")
    one.add_argument("--swe", type=Path, help="Sutradhara swe_bench_trace.json")
    one.add_argument("--synthetic", action="store_true", help="the synthetic web-search agent")
    one.add_argument(
        "--pressure",
        action="store_true",
        help="the cache-pressure workload: agents waiting on tools among one-shot traffic "
        "(sized for --rates 1 --block-size 32, 240 KV blocks, --max-num-seqs 4; see "
        "scripts/pressure_replay.py)",
    )
    src.add_argument(
        "--token-scale",
        type=_fraction,
        default=None,
        help="scale token counts (--weka/--mooncake/--synthetic; e.g. 1/64)",
    )
    src.add_argument("--max-requests", type=int, default=None, help="replay the first N requests")
    src.add_argument(
        "--max-calls",
        type=int,
        default=None,
        help="drop requests with more LLM calls than this (applied first)",
    )
    src.add_argument(
        "--min-calls",
        type=int,
        default=None,
        help="drop requests with fewer LLM calls than this (2: only requests that use tools)",
    )
    src.add_argument(
        "--max-context",
        type=int,
        default=None,
        help="drop requests whose recorded context (all content, text at ~4 characters per "
        "token) exceeds this many tokens (applied first)",
    )
    src.add_argument("--max-conversations", type=int, default=None, help="WEKA: files to read")
    src.add_argument(
        "--max-tool-latency",
        type=float,
        default=None,
        help="WEKA: clip recorded tool latencies to this many seconds",
    )
    src.add_argument("--no-subagents", action="store_true", help="WEKA: main threads only")
    src.add_argument("--synthetic-requests", type=int, default=56)
    src.add_argument(
        "--synthetic-calls", type=_list(int), default=[2, 6], help="LLM calls per request, LO,HI"
    )
    src.add_argument("--synthetic-system-tokens", type=int, default=1000)
    src.add_argument(
        "--synthetic-tool-median", type=float, default=0.5, help="median tool latency (s)"
    )

    run = parser.add_argument_group("replay")
    run.add_argument(
        "--modes",
        type=_list(str),
        default=list(MODE_NAMES),
        help=f"comma-separated, from {','.join(MODE_NAMES)}, all-<switch> to leave one out, "
        f"or {CONTROL_MODE} (the baseline again, last: an A/A control of run-to-run noise) "
        "(default: the first seven)",
    )
    loads = run.add_mutually_exclusive_group()
    loads.add_argument(
        "--rates",
        type=_list(float),
        default=None,
        help="Poisson arrival rates, requests/s (default 0.5,1,2)",
    )
    loads.add_argument("--recorded", action="store_true", help="use the trace's arrival times")
    run.add_argument(
        "--time-scale",
        type=_list(float),
        default=[1.0],
        help="with --recorded: multiply arrival times (0.5 = twice as fast)",
    )
    run.add_argument(
        "--seed",
        type=int,
        default=0,
        help="draws arrivals, token content (and the synthetic trace)",
    )
    run.add_argument(
        "--repeats",
        type=_int_at_least(1),
        default=1,
        help="replay every mode at every load N times, Poisson arrivals drawn with seeds "
        "seed..seed+N-1, the order of the modes rotated from one repeat to the next; "
        "reports each median with a 95%% interval (default 1)",
    )
    run.add_argument(
        "--tool-factor", type=float, default=1.0, help="tools sleep recorded latency x this"
    )
    run.add_argument(
        "--ftr-target",
        type=float,
        default=None,
        help="FTR target (s); default: --ftr-target-factor x the baseline's median FTR at "
        "the lowest load",
    )
    run.add_argument(
        "--ftr-target-factor",
        type=float,
        default=2.0,
        help="derives the default FTR target (default 2)",
    )
    run.add_argument(
        "--run-timeout",
        type=float,
        default=3600.0,
        help="seconds per (mode, load) run before what still runs is cancelled",
    )
    run.add_argument(
        "--run-priority-gap",
        type=_int_at_least(0),
        default=None,
        help="run_priority: how many priority steps the newest live run may trail the "
        "oldest by (aging; default: half the engine's max_num_seqs, "
        f"{DEFAULT_MAX_GAP} if it does not say)",
    )
    run.add_argument("--ttft-deadline", type=float, default=None, help="fluidity: TTFT deadline")
    run.add_argument("--tbt-deadline", type=float, default=None, help="fluidity: TBT deadline")

    eng = parser.add_argument_group("engine")
    eng.add_argument(
        "--engine",
        default="embedded",
        help="embedded (vLLM in-process), scripted, twin (simulated vLLM), or an engine URL",
    )
    eng.add_argument("--model", default=None, help="embedded: a local model folder")
    eng.add_argument(
        "--kv-cache-bytes",
        type=_bytes,
        default=None,
        help="KV cache size, e.g. 256MiB (embedded: default 512MiB; twin: per GPU, "
        "replacing the profile's cache)",
    )
    eng.add_argument(
        "--block-size",
        type=int,
        default=None,
        help="KV block size (embedded: vLLM's default; scripted: 16)",
    )
    eng.add_argument(
        "--max-model-len",
        type=int,
        default=None,
        help="context length (embedded 4096, scripted 32768)",
    )
    eng.add_argument("--max-num-seqs", type=int, default=None, help="embedded: batch size cap")
    eng.add_argument(
        "--live-ttl-s", type=float, default=None, help="embedded, twin: " + LIVE_TTL_HELP
    )
    eng.add_argument(
        "--num-blocks",
        type=int,
        default=None,
        help="scripted: KV blocks (default unbounded; it does not preempt, so they "
        "must hold every running request)",
    )
    eng.add_argument("--prefill-s-per-token", type=float, default=0.001, help="scripted timing")
    eng.add_argument("--decode-step-s", type=float, default=0.02, help="scripted timing")
    eng.add_argument("--decode-s-per-seq", type=float, default=0.0, help="scripted timing")
    eng.add_argument("--step-overhead-s", type=float, default=0.0, help="scripted timing")

    add_twin_arguments(parser)

    out = parser.add_argument_group("report")
    out.add_argument("--out", type=Path, default=Path("replay-report"), help="report folder")
    out.add_argument("--title", default=None)
    out.add_argument("--no-plots", action="store_true")


def _loads(args: argparse.Namespace) -> list[Load]:
    if args.recorded:
        return [RecordedLoad(s) for s in args.time_scale]
    return [PoissonLoad(r, args.seed) for r in (args.rates or [0.5, 1.0, 2.0])]


async def _open_engine(args: argparse.Namespace) -> tuple[EngineSource, Callable[[], Any] | None]:
    """The engine source and how to shut it down."""
    if args.engine == "scripted":
        timing = TimingModel(
            prefill_s_per_token=args.prefill_s_per_token,
            decode_step_s=args.decode_step_s,
            decode_s_per_seq=args.decode_s_per_seq,
            step_overhead_s=args.step_overhead_s,
        )
        return ScriptedSource(
            timing,
            block_size=args.block_size or 16,
            num_blocks=args.num_blocks,
            max_model_len=args.max_model_len or 32768,
        ), None
    if args.engine == "twin":
        return twin_source(args), None
    if args.engine == "embedded":
        from agentrt.engine import EngineOptions, VLLMEngine

        opts = EngineOptions(
            model=args.model,
            max_model_len=args.max_model_len or 4096,
            kv_cache_bytes=args.kv_cache_bytes or EMBEDDED_KV_CACHE_BYTES,
            block_size=args.block_size,
            max_num_seqs=args.max_num_seqs,
            cache_hints=True,
            live_ttl_s=args.live_ttl_s,
        )
        print("starting the embedded engine (vLLM)...", file=sys.stderr, flush=True)
        engine = await VLLMEngine.start(opts)
        desc = {
            "engine": "embedded vLLM",
            "kv_cache_bytes": opts.kv_cache_bytes,
            "max_num_seqs": args.max_num_seqs,
            "live_ttl_s": args.live_ttl_s,
        }
        return SharedSource(engine, desc), engine.aclose
    if re.match(r"^https?://", args.engine):
        from agentrt import close_default_engine, resolve_engine

        remote = await resolve_engine(args.engine)
        return SharedSource(remote, {"engine": args.engine}), close_default_engine
    raise ValueError(
        f"--engine must be embedded, scripted, twin or an http(s) URL, got {args.engine!r}"
    )


async def _run(args: argparse.Namespace) -> int:
    check_replica_arguments(args)
    # Every run of this process takes its priority from the one process-wide counter.
    RUN_PRIORITIES.max_gap = args.run_priority_gap
    modes = [replay_mode(m) for m in args.modes]
    trace = load_source(args)
    loads = _loads(args)
    if args.engine == "twin" and args.router:
        return await run_routers(args, trace, modes, loads)
    try:
        source, close = await _open_engine(args)
    except ImportError as exc:
        print(f"agentrt replay: engine {args.engine!r} is not available: {exc}", file=sys.stderr)
        return 2
    try:
        plan = build_plan(trace, source.tokenizer, seed=args.seed, tool_factor=args.tool_factor)
        runs = await replay_source(args, plan, modes, loads, source)
        engine_desc = source.describe()
    finally:
        if close is not None:
            await close()
    files = write_replay_report(args, trace, plan, runs, engine_desc, args.out)
    print(files.markdown.read_text())
    print(f"report: {files.json.parent}", file=sys.stderr)
    return 0


def main(args: argparse.Namespace) -> int:
    """Run ``agentrt replay`` with parsed ``args``; returns the exit status."""
    try:
        if args.engine in ("scripted", "twin"):
            # Model-free timing needs no wall clock: virtual time makes it instant and exact.
            from agentrt.testing import run_virtual

            return run_virtual(_run, args)
        return asyncio.run(_run(args))
    except (ValueError, EngineError) as exc:
        print(f"agentrt replay: {exc}", file=sys.stderr)
        return 2
