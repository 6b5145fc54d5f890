"""``agentrt run``: answer one question with an agent and print the answer and timings.

The agent is a built-in one (``--agent calculator``) or any ``package.module:attribute``
naming an ``Agent``; it runs on the embedded default engine or ``--engine URL``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence

import anyio

from agentrt._catalog import BUILTIN_AGENTS, load_agents
from agentrt._engines import close_default_engine


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
        return 0 if result.status != "error" else 1

    return anyio.run(go)
