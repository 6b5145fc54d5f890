"""Checking a shell command's arguments: every value that can name a location stays inside.

A program with ``ProgramOptions`` is parsed the way GNU getopt parses it, so a value
attached to a short option (``sort -o/abs``, ``cp -t/abs``, ``tar -C/abs``), clustered
behind flags (``-rvo/abs``), given after ``=`` or as the next argument is found and
checked; an option that is not on the program's list is refused. A program without a
list is checked conservatively: every operand, every ``=`` value, and every tail of a
short-option cluster (``-o/abs`` → ``o/abs`` and ``/abs``) must lie inside the workspace.

A checked value lies inside when its fully resolved location (symlinks of existing
parts followed, as ``Workspace.contains`` does) is the workspace or below it — whether or
not the file exists, so ``linkdir/new`` with ``linkdir`` pointing out is refused too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from ._shell_options import ProgramOptions, ValueKind
from ._tool import ToolFailure
from ._workspace import Workspace

_NUMBER = re.compile(r"-[0-9][0-9.]*")


class _Checker:
    """One command's check: the workspace, the working folder, the program's name."""

    def __init__(self, workspace: Workspace, workdir: Path, program: str) -> None:
        self.workspace = workspace
        self.workdir = workdir
        self.program = program

    def value(self, arg: str, value: str, kind: ValueKind) -> None:
        if kind == "text":
            return
        if kind == "archive" and ":" in value.split("/", 1)[0]:
            raise ToolFailure(
                f"command: argument {arg!r}: {self.program} would read 'host:file' over the "
                "network; name a file of the workspace"
            )
        if not self.workspace.contains(self.workdir / value):
            shown = "" if value == arg else f" ({value!r})"
            raise ToolFailure(
                f"command: argument {arg!r}{shown} refers to a location outside the "
                "workspace; only paths inside the workspace are allowed"
            )

    def refuse(self, option: str, options: ProgramOptions) -> ToolFailure:
        return ToolFailure(
            f"command: {self.program} does not allow option {option!r} here; allowed "
            f"options of {self.program}: {options.summary()}"
        )


def _cluster(
    check: _Checker, options: ProgramOptions, arg: str, letters: str, rest: Iterator[str]
) -> None:
    """Check one cluster of short options; values come attached or from ``rest``."""
    for i, letter in enumerate(letters):
        if letter in options.flags:
            continue
        kind = options.values.get(letter)
        if kind is None:
            raise check.refuse(f"-{letter}", options)
        attached = letters[i + 1 :]
        if attached:
            check.value(arg, attached, kind)
            return
        value = next(rest, None)
        if value is None:
            raise ToolFailure(f"command: option -{letter} of {check.program} needs a value")
        check.value(value, value, kind)


def _long(check: _Checker, options: ProgramOptions, arg: str, rest: Iterator[str]) -> None:
    name, equals, value = arg[2:].partition("=")
    if name in options.long_flags:
        if equals:
            raise ToolFailure(f"command: option --{name} of {check.program} takes no value")
        return
    if name in options.long_optional:
        return  # its value, if any, is text (--color=auto)
    kind = options.long_values.get(name)
    if kind is None:
        # GNU accepts abbreviations; only exact names are on the list, so an abbreviation
        # cannot stand in for an option that is not.
        raise check.refuse(f"--{name}", options)
    if equals:
        check.value(arg, value, kind)
        return
    following = next(rest, None)
    if following is None:
        raise ToolFailure(f"command: option --{name} of {check.program} needs a value")
    check.value(following, following, kind)


def _with_options(check: _Checker, options: ProgramOptions, args: Sequence[str]) -> None:
    rest = iter(args)
    if options.bundled_first and args and not args[0].startswith("-"):
        # tar's old style: "cvf out.tar dir"; each value letter takes the next argument.
        first = next(rest)
        for letter in first:
            _cluster(check, options, first, letter, rest)
    options_ended = False
    for arg in rest:
        if options_ended or arg == "-" or not arg.startswith("-"):
            check.value(arg, arg, options.operands)
        elif arg == "--":
            options_ended = True
        elif options.numbers and _NUMBER.fullmatch(arg):
            continue  # "head -5", "seq -3 3": a count or a number, not a location
        elif arg.startswith("--"):
            _long(check, options, arg, rest)
        else:
            _cluster(check, options, arg, arg[1:], rest)


def _conservative(check: _Checker, args: Sequence[str]) -> None:
    options_ended = False
    for arg in args:
        if options_ended or arg == "-" or not arg.startswith("-"):
            check.value(arg, arg, "path")
            _, equals, value = arg.partition("=")
            if equals:
                check.value(arg, value, "path")  # dd-style "of=/abs"
        elif arg == "--":
            options_ended = True
        elif arg.startswith("--"):
            _, equals, value = arg.partition("=")
            if equals:
                check.value(arg, value, "path")
        else:
            # Which letter takes a value is unknown: any tail of the cluster might be one.
            for start in range(1, len(arg)):
                check.value(arg, arg[start:], "path")


def check_arguments(
    workspace: Workspace,
    workdir: Path,
    program: str,
    args: Sequence[str],
    options: ProgramOptions | None,
) -> None:
    """Refuse ``args`` of ``program`` that name a location outside the workspace.

    Args:
        workspace: the confinement.
        workdir: the folder the program runs in (relative values are resolved from it).
        program: the program's name, for messages.
        args: the arguments after the program name.
        options: the program's allowed options; None: the conservative check.

    Raises:
        ToolFailure: an option not allowed, a missing value, or a location outside.
    """
    check = _Checker(workspace, workdir, program)
    if options is None:
        _conservative(check, args)
    else:
        _with_options(check, options, args)
