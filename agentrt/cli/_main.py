"""The ``agentrt`` command line: one sub-command per job, each defined in its own module.

Only the chosen sub-command's module is imported, so ``agentrt model prepare`` does not
pay for the web server's or the benchmark's imports.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from agentrt._tracing import otel_env_requested

# name -> (module defining `add_arguments(parser, argv)` and `main(args) -> int`, help text);
# argv is the whole command line, for commands whose options depend on a sub-command.
COMMANDS: dict[str, tuple[str, str]] = {
    "model": ("agentrt.cli._model", "prepare or locate the default model"),
    "engine": ("agentrt.cli._engine", "serve the engine over HTTP, or benchmark it"),
    "run": ("agentrt.cli._run", "run an example agent on a question"),
    "bench": ("agentrt.cli._bench", "benchmark the orchestrator's co-design switches"),
    "replay": ("agentrt.cli._replay", "replay agent traces and report FTR and KV hit rates"),
    "serve": ("agentrt.server._cli", "serve the REST API (OpenAI-compatible + agent runs)"),
}


def build_parser(command: str | None, argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentrt", description="agentrt command line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            mod = importlib.import_module(module)
            mod.add_arguments(p, argv)
            p.set_defaults(_main=mod.main)
    _show_defaults(parser)
    return parser


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Append each option's default to its help (unless the help names it already).

    Done once here rather than with a formatter class in every module because argparse's
    ArgumentDefaultsHelpFormatter skips options declared without a help text.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _show_defaults(child)
            continue
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS:
            continue
        text = action.help or ""
        if text is argparse.SUPPRESS or "default" in text.lower() or not action.option_strings:
            continue
        action.help = f"{text} (default: %(default)s)".strip()


def main(argv: Sequence[str] | None = None) -> int:
    """The ``agentrt`` program. Given ``argv`` (a call from Python), process-wide signal
    handling is left alone; run as a program, SIGTERM unwinds it like Ctrl-C (so an embedded
    engine's processes are stopped, not orphaned)."""
    if argv is None:
        from agentrt.engine._process_exit import unwind_on_sigterm

        unwind_on_sigterm()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None, argv).parse_args(argv)
    if otel_env_requested():
        _export_traces()
    return int(args._main(args))


def _export_traces() -> None:
    """The ``OTEL_*`` variables ask for spans: set up the SDK (a warning if it is missing)."""
    try:
        from agentrt._otel_sdk import configure_from_env
    except ImportError as exc:
        print(
            f"agentrt: OTEL_* variables ask for traces, but the OpenTelemetry SDK is missing "
            f"(pip install 'agentrt[otel]'); not tracing ({exc})",
            file=sys.stderr,
        )
        return
    try:
        configure_from_env()
    except ValueError as exc:
        raise SystemExit(f"agentrt: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())
