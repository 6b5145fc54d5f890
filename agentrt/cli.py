"""The ``agentrt`` command line: one sub-command per job, each defined in its own module.

Only the chosen sub-command's module is imported, so ``agentrt model prepare`` does not
pay for the web server's or the benchmark's imports.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module defining `add_arguments(parser)` and `main(args) -> int`, help text)
COMMANDS: dict[str, tuple[str, str]] = {
    "model": ("agentrt._cli_model", "prepare or locate the default model"),
    "engine": ("agentrt._cli_engine", "serve the engine over HTTP, or benchmark it"),
    "run": ("agentrt._cli_run", "run an example agent on a question"),
    "bench": ("agentrt._cli_bench", "benchmark the orchestrator's co-design switches"),
    "replay": ("agentrt.replay._cli", "replay agent traces and report FTR and KV hit rates"),
    "serve": ("agentrt.server._cli", "serve the REST API (OpenAI-compatible + agent runs)"),
}


def build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentrt", description="agentrt command line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_main=mod.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    return int(args._main(args))


if __name__ == "__main__":
    sys.exit(main())
