"""``agentrt engine``: serve the engine over HTTP (vLLM's server, configured for agentrt),
benchmark it, or profile its step times for the vLLM twin."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agentrt.engine import ModelNotAvailableError

from ._engine_options import add_engine_flags, engine_options
from ._engine_profile import add_profile_arguments
from ._engine_profile import main as profile_main


def add_arguments(p: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    sub = p.add_subparsers(dest="engine_command", required=True)
    serve = sub.add_parser(
        "serve", help="start vLLM's OpenAI server with agentrt's scheduler and template"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: loopback only)"
    )
    serve.add_argument("--port", type=int, default=8100)
    serve.add_argument("--served-model-name", default=None)
    serve.add_argument("--api-key", default=None)
    add_engine_flags(serve)
    cluster = sub.add_parser(
        "cluster", help="N local `engine serve` replicas behind vllm-router (tests, laptops)"
    )
    from ._engine_cluster import add_cluster_arguments

    add_cluster_arguments(cluster)
    bench = sub.add_parser(
        "bench", help="engine start, prefill and decode speed; wrapper overhead vs AsyncLLM"
    )
    from agentrt.bench._engine import add_bench_arguments

    add_bench_arguments(bench)
    profile = sub.add_parser(
        "profile", help="measure the engine's step times: a cost profile for the vLLM twin"
    )
    add_profile_arguments(profile)
    check = sub.add_parser(
        "check-trace", help="price a real engine's step trace with a twin cost profile"
    )
    from ._engine_check_trace import add_check_trace_arguments

    add_check_trace_arguments(check)


def main(args: argparse.Namespace) -> int:
    if args.engine_command == "profile":
        return profile_main(args)
    if args.engine_command == "check-trace":
        from ._engine_check_trace import main as check_main

        return check_main(args)
    if args.engine_command == "bench":
        from agentrt.bench._engine import main as bench_main

        return bench_main(args)
    if args.engine_command == "cluster":
        from ._engine_cluster import main as cluster_main

        return cluster_main(args)
    from agentrt.engine._serve import ServeOptions, exec_server

    try:
        exec_server(
            engine_options(args),
            ServeOptions(args.host, args.port, args.served_model_name, args.api_key),
        )
    except ModelNotAvailableError as exc:
        print(f"agentrt engine serve: {exc}", file=sys.stderr)
        return 1
