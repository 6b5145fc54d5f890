"""``agentrt run``: answer one question with an agent and print the answer and timings.

The agent is a built-in one (``--agent calculator``) or any ``package.module:attribute``
naming an ``Agent``; it runs on the embedded default engine or ``--engine URL``.
``--trace-file out.json`` writes the run's OpenTelemetry spans as OTLP/JSON (no collector
needed) and prints them as a tree.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio

from agentrt._catalog import BUILTIN_AGENTS, load_agents
from agentrt._engines import close_default_engine

from ._span_tree import span_tree

if TYPE_CHECKING:
    from agentrt._otel_sdk import TraceFile


def add_arguments(p: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    p.add_argument("question", nargs="+", help="what to ask")
    p.add_argument(
        "--agent",
        default="calculator",
        help=f"built-in ({', '.join(BUILTIN_AGENTS)}) or package.module:attribute",
    )
    p.add_argument("--engine", default=None, help="URL of a remote engine (default: embedded)")
    p.add_argument("--baseline", action="store_true", help="turn every co-design switch off")
    p.add_argument("--stream", action="store_true", help="print tokens as they are generated")
    p.add_argument(
        "--trace-file",
        metavar="PATH",
        help="write the run's spans (OpenTelemetry, OTLP/JSON) to PATH and print their tree",
    )


def main(args: argparse.Namespace) -> int:
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    try:
        agent = (
            BUILTIN_AGENTS[args.agent]()
            if args.agent in BUILTIN_AGENTS
            else load_agents(args.agent)[0]
        )
    except (ValueError, ImportError) as exc:
        print(f"agentrt run: {exc}", file=sys.stderr)
        return 2
    if args.engine:
        agent = dataclasses.replace(agent, engine=args.engine)
    if args.baseline:
        agent = agent.baseline()
    question = " ".join(args.question)
    recorder = _trace_recorder() if args.trace_file else None

    async def go() -> int:
        try:
            if not args.stream:
                result = await agent.run(question)
            else:
                result = None
                async for ev in agent.stream(question):
                    if ev.kind == "token":
                        print(ev.text, end="", flush=True)
                    elif ev.kind == "tool_finished":
                        print(f"\n  [{ev.name} -> {ev.result.content[:80]!r}]", flush=True)
                    elif ev.kind == "done":
                        result = ev.result
                print()
        finally:
            await close_default_engine()
        assert result is not None
        print(f"A: {result.final_text.strip()}")
        print(f"[{result.status}] {result.timing_line()}")
        if recorder is not None:
            # The run's trace only (vLLM's start-up spans, say, are traces of their own).
            doc = recorder.write(args.trace_file, result.trace_id)
            print(f"trace {result.trace_id} -> {args.trace_file}")
            print(span_tree(doc))
        return 0 if result.status != "error" else 1

    return anyio.run(go)


def _trace_recorder() -> TraceFile:
    """Keeps the run's spans (the OpenTelemetry SDK is needed: the ``otel`` extra)."""
    try:
        from agentrt._otel_sdk import TraceFile
    except ImportError as exc:
        raise SystemExit(
            f"agentrt run: --trace-file needs the OpenTelemetry SDK "
            f"(pip install 'agentrt[otel]'): {exc}"
        ) from None
    return TraceFile()
