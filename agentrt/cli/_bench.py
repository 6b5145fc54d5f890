"""``agentrt bench``: every benchmark behind one command; each prints a table, writes JSON + PNG."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

# name -> (module with add_bench_arguments(parser) and main(args) -> int, help)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "engine": ("agentrt.bench._engine", "engine start, prefill/decode speed, wrapper vs AsyncLLM"),
    "cache": (
        "agentrt.bench._cache",
        "prefix-cache hit rate under pressure: tiers vs LRU vs maximum",
    ),
    "agents": (
        "agentrt.bench._agents",
        "a multi-tool agent workload: baseline vs each switch vs all",
    ),
    "frameworks": (
        "agentrt.bench._frameworks",
        "an OpenAI Agents SDK agent via vLLM's own server vs agentrt serve",
    ),
    "flips": (
        "agentrt.bench._flips",
        "share of example-agent runs whose tool calls or answer change with the switches",
    ),
    "overhead": ("agentrt.bench._overhead", "the orchestrator's own cost per iteration"),
    "scale": ("agentrt.bench._scale", "1,000 concurrent agent runs: memory during and after"),
    "server": (
        "agentrt.server._bench",
        "REST server vs in-process SDK: requests/s, µs per streamed token",
    ),
}


def add_arguments(p: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    # Only the chosen benchmark's module is imported (they pull in vLLM, the server...).
    chosen = next((a for a in argv if a in BENCHMARKS), None)
    sub = p.add_subparsers(dest="bench", required=True)
    for name, (module, help_text) in BENCHMARKS.items():
        q = sub.add_parser(name, help=help_text, description=help_text)
        q.set_defaults(_bench_module=module)
        if name == chosen:
            _add(q, module)


def _add(parser: argparse.ArgumentParser, module: str) -> None:
    mod = importlib.import_module(module)
    adder = getattr(mod, "add_bench_arguments", None) or mod.add_arguments
    adder(parser)


def main(args: argparse.Namespace) -> int:
    return int(importlib.import_module(args._bench_module).main(args))
