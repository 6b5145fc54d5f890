"""The ``shell`` tool: run one allow-listed program (no shell syntax) inside the workspace."""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path

import anyio
import anyio.to_thread

from ._process import ProcessLimits, child_env, run_limited
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


def _check_paths(workspace: Workspace, workdir: Path, args: Sequence[str]) -> None:
    """Refuse arguments that name a location outside the workspace.

    A heuristic, not a jail: it looks at each argument (and the value of '--opt=value')
    that is absolute, climbs with '..', or names an existing path (which may be a
    symlink pointing out). A program can still open other paths on its own.
    """
    for arg in args:
        value = arg
        if arg.startswith("-"):
            if "=" not in arg:
                continue
            value = arg.split("=", 1)[1]
        if not value:
            continue
        candidate = Path(value)
        looks_like_path = (
            candidate.is_absolute()
            or ".." in candidate.parts
            or os.path.lexists(workdir / candidate)
        )
        if looks_like_path and not workspace.contains(workdir / candidate):
            raise ToolFailure(
                f"command: argument {arg!r} refers to a location outside the workspace; "
                "only paths inside the workspace are allowed"
            )


def shell_tool(
    root: str | os.PathLike[str],
    allowed_programs: Collection[str],
    *,
    limits: ProcessLimits | None = None,
    name: str = "shell",
) -> Tool:
    """A tool that runs one allow-listed program with arguments inside the workspace.

    The command is split with ``shlex`` and executed directly — no shell, so no pipes,
    redirections, globbing or variables. The program must be a bare name on
    ``allowed_programs`` (looked up on PATH); it runs with the limits and cleanup of
    the ``python`` tool, with the workspace (or a folder inside it) as working folder.
    Allowing an interpreter (``python``, ``bash``...) or a program that runs others
    (``find -exec``, ``xargs``) allows arbitrary code: choose the list accordingly.

    Args:
        root: the workspace folder; commands run inside it.
        allowed_programs: program names the model may run, e.g. ``["ls", "wc", "git"]``.
        limits: time, memory and output limits (defaults: ``ProcessLimits()``).
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
        _check_paths(workspace, workdir, argv[1:])
        home = Path(tempfile.mkdtemp(prefix="agentrt-shell-"))
        try:
            env = child_env(home)
            executable = shutil.which(program, path=env["PATH"])
            if executable is None:
                raise ToolFailure(f"command: {program!r} is allowed but not installed here")
            result = await run_limited(
                [executable, *argv[1:]], cwd=workdir, env=env, limits=lim, mode="exec"
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
