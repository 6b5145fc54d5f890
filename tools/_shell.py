"""The ``shell`` tool: run one allow-listed program (no shell syntax) inside the workspace."""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path

import anyio
import anyio.to_thread

from ._limits import ProcessLimits
from ._process import child_env, run_limited
from ._sandbox import Bind
from ._shell_args import check_arguments
from ._shell_options import BUILT_IN, ProgramOptions
from ._tool import Tool, ToolFailure, tool
from ._workspace import Workspace

MAX_COMMAND_CHARS = 10_000
_STARTUP_GRACE_S = 5.0


def _parse(command: str) -> list[str]:
    if len(command) > MAX_COMMAND_CHARS:
        raise ToolFailure(f"command: longer than {MAX_COMMAND_CHARS:,} characters")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ToolFailure(f"command: cannot be parsed ({exc}); quote arguments as in sh") from None
    if not argv:
        raise ToolFailure("command: empty; give a program and its arguments, e.g. 'ls -la'")
    return argv


def shell_tool(
    root: str | os.PathLike[str],
    allowed_programs: Collection[str],
    *,
    limits: ProcessLimits | None = None,
    program_options: Mapping[str, ProgramOptions] | None = None,
    name: str = "shell",
) -> Tool:
    """A tool that runs one allow-listed program with arguments inside the workspace.

    The command is split with ``shlex`` and executed directly — no shell, so no pipes,
    redirections, globbing or variables. The program must be a bare name on
    ``allowed_programs`` (looked up on PATH); it runs with the limits and cleanup of
    the ``python`` tool, with the workspace (or a folder inside it) as working folder.
    Allowing an interpreter (``python``, ``bash``...) or a program that runs others
    (``find -exec``, ``xargs``) allows arbitrary code: choose the list accordingly.

    Every argument that can name a location must lie inside the workspace. Programs with
    an option list (built in for common coreutils, grep and tar; ``program_options`` adds
    or replaces lists) are parsed exactly and refuse options not on their list; others are
    checked conservatively (see ``_shell_args``). Where bubblewrap is usable, the program
    also runs in a sandbox that shows it only the workspace (writable) and a read-only
    system, so an argument check missed by a program's own syntax (``sed 'w /x'``) still
    cannot reach other files.

    Args:
        root: the workspace folder; commands run inside it.
        allowed_programs: program names the model may run, e.g. ``["ls", "wc", "git"]``.
        limits: time, memory and output limits (defaults: ``ProcessLimits()``).
        program_options: allowed options of programs, by name, over the built-in lists.
        name: the tool name the model sees.

    Raises:
        ValueError: ``root`` is not a folder; ``allowed_programs`` is empty or holds a
            name with a path separator.
    """
    workspace = Workspace.at(root)
    allowed = frozenset(allowed_programs)
    if not allowed:
        raise ValueError("allowed_programs: must name at least one program")
    for program in sorted(allowed):
        if not program or "/" in program or program != program.strip():
            raise ValueError(f"allowed_programs: {program!r} must be a bare program name")
    lim = limits or ProcessLimits()
    listed = ", ".join(sorted(allowed))
    known = {**BUILT_IN, **(program_options or {})}
    option_lists = {program: known.get(program) for program in allowed}

    async def shell(command: str, cwd: str = ".") -> str:
        """Run a command.

        Args:
            command: program and arguments, quoted as in sh, e.g. "grep -rn TODO src".
            cwd: working folder relative to the workspace root.
        """
        argv = _parse(command)
        program = argv[0]
        if program not in allowed:
            raise ToolFailure(f"command: program {program!r} is not allowed; allowed: {listed}")
        workdir = workspace.resolve(cwd, field="cwd")
        if not workdir.is_dir():
            raise ToolFailure(f"cwd: {cwd!r} is not an existing folder of the workspace")
        check_arguments(workspace, workdir, program, argv[1:], option_lists[program])
        home = Path(tempfile.mkdtemp(prefix="agentrt-shell-"))
        try:
            env = child_env(home)
            executable = shutil.which(program, path=env["PATH"])
            if executable is None:
                raise ToolFailure(f"command: {program!r} is allowed but not installed here")
            binds = [
                Bind(workspace.root, writable=True),
                Bind(home, writable=True),
                Bind(Path(executable)),  # shown even when it lives outside /usr
            ]
            result = await run_limited(
                [executable, *argv[1:]],
                cwd=workdir,
                env=env,
                limits=lim,
                mode="exec",
                binds=binds,
            )
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lambda: shutil.rmtree(home, ignore_errors=True))
        if result.kind == "timed_out":
            raise ToolFailure(result.render())
        return result.render()

    description = (
        "Run one program with arguments in the workspace (no shell: no pipes, redirections, "
        f"globs or variables). Allowed programs: {listed}. Answers the exit status, stdout "
        f"and stderr. Limits: {lim.timeout_s:g} s, {lim.max_output_bytes:,} bytes of output "
        "per stream; paths outside the workspace are refused."
    )
    return tool(
        name=name,
        description=description,
        timeout_s=lim.timeout_s + _STARTUP_GRACE_S,
        expected_latency_s=0.1,
        side_effect_free=False,
    )(shell)
