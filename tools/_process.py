"""Running a child process under limits: time, memory, processes, output, network, cleanup.

The ``python`` and ``shell`` tools share this runner. The child starts in a new session
(its process group id is its pid) through ``_launcher.py``, which sets the per-process
resource limits inside the child; where bubblewrap works, the launcher itself runs in the
sandbox of ``_sandbox.py``. While it runs, ``_supervisor.py`` holds the call's memory and
process count to ``ProcessLimits``. Whatever happens — normal exit, timeout, a limit,
cancellation of the caller — every process of the call is killed with SIGKILL before the
call returns: in the sandbox its PID namespace goes down with it; without the sandbox the
process group is killed (and, while the launcher lives, the orphans re-parented to it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import anyio
import anyio.to_thread
from anyio import CancelScope
from anyio.abc import ByteReceiveStream, Process

from . import _supervisor
from ._capture import OutputCapture
from ._limits import LimitExceeded, ProcessLimits, ProcessResult
from ._sandbox import LAUNCHER, Bind, Bubblewrap, NoSandbox, find_sandbox
from ._tool import ToolFailure

_REAP_TIMEOUT_S = 2.0  # a SIGKILLed process is reaped in milliseconds; this bounds the wait
_DRAIN_GRACE_S = 1.0  # a setsid escapee may hold our pipes open; do not wait on it for long


class _NetworkIsolation:
    """Finds, once per process, how (if at all) a child can get its own network namespace."""

    def __init__(self) -> None:
        self._prefix: tuple[str, ...] | None = None

    async def prefix(self) -> tuple[str, ...]:
        if self._prefix is None:
            self._prefix = await self._probe()
        return self._prefix

    @staticmethod
    async def _probe() -> tuple[str, ...]:
        exe = shutil.which("unshare")
        true = shutil.which("true")
        if exe is None or true is None:
            return ()
        # Root (or CAP_SYS_ADMIN) can create a network namespace directly; others may
        # be allowed one inside a new user namespace. Where neither works, no prefix.
        for options in (("--net",), ("--user", "--map-root-user", "--net")):
            candidate = (exe, *options, "--")
            try:
                probe = await anyio.run_process(
                    [*candidate, true],
                    check=False,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            except OSError:
                continue
            if probe.returncode == 0:
                return candidate
        return ()


_network = _NetworkIsolation()


def child_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: the agent's own variables (API keys...) are not passed on."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "TMPDIR": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    env.update(extra or {})
    return env


def _kill_group(pgid: int) -> None:
    # Already gone is fine (PermissionError: how macOS reports a group of zombies).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"  # a real-time signal has no name


async def _wait_exit(process: Process) -> None:
    # Polls returncode instead of process.wait(): on asyncio, wait() also waits for the
    # pipes to close, which a background grandchild holding them would delay forever.
    delay = 0.002
    while process.returncode is None:
        await anyio.sleep(delay)
        delay = min(delay * 1.5, 0.05)


async def _drain(
    stream: ByteReceiveStream | None, capture: OutputCapture, done: anyio.Event
) -> None:
    try:
        if stream is not None:
            async for chunk in stream:
                capture.feed(chunk)
    except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
        pass  # the pipe closed under us during teardown
    finally:
        done.set()


async def _supervise(
    root: int, skip_levels: int, limits: ProcessLimits, over: list[LimitExceeded], stop: CancelScope
) -> None:
    """Poll the call's processes until one of its limits is passed, then stop the wait."""
    if limits.max_processes is None and limits.memory_bytes is None:
        return
    while True:
        began = anyio.current_time()
        seen = await anyio.to_thread.run_sync(_supervisor.usage, root, skip_levels)
        passed = _supervisor.exceeded(limits, seen)
        if passed is not None:
            over.append(passed)
            stop.cancel()
            return
        # A look reads all of /proc: on a busy machine, look less often than every
        # POLL_S, so that watching costs at most a fifth of a core.
        spent = anyio.current_time() - began
        await anyio.sleep(max(_supervisor.POLL_S, 4 * spent))


async def _isolation(limits: ProcessLimits) -> Bubblewrap | None:
    """The sandbox to use, None for the weaker isolation.

    Raises:
        ToolFailure: the sandbox is required and does not work here.
    """
    if limits.sandbox == "off":
        return None
    found = await find_sandbox()
    if isinstance(found, NoSandbox):
        if limits.sandbox == "required":
            raise ToolFailure(f"the sandbox is required but cannot be used: {found.reason}")
        return None
    return found


async def _command(
    limits: ProcessLimits,
    mode: Literal["exec", "python"],
    sandbox: Bubblewrap | None,
    binds: Sequence[Bind],
    cwd: Path,
) -> list[str]:
    rlimits = limits.rlimits()
    if sandbox is not None and limits.max_processes is not None:
        # Counted in the sandbox's own user namespace, so only the call's tasks count (and
        # bwrap's init beside them). Not enforced for root; the supervisor still is.
        rlimits["NPROC"] = limits.max_processes + 1
    config = {
        "rlimits": rlimits,
        "block_network": limits.isolate_network and mode == "python",
        "subreaper": sandbox is None,  # in the sandbox, its PID namespace's init reaps
        "mode": mode,
    }
    # -I: ignore the agent's PYTHON* variables, user site and script folder; -u: output
    # printed before a timeout still reaches us; -B: no .pyc files in the workspace.
    python_flags = ["-I", "-u", "-B", "-X", "utf8"] if mode == "python" else ["-I", "-S"]
    launcher = [sys.executable, *python_flags, str(LAUNCHER), json.dumps(config), "--"]
    if sandbox is not None:
        tmp_bytes = limits.max_file_bytes or limits.memory_bytes
        prefix = sandbox.command(
            binds, cwd=cwd, isolate_network=limits.isolate_network, tmp_bytes=tmp_bytes
        )
        return [*prefix, *launcher]
    network = await _network.prefix() if limits.isolate_network else ()
    return [*network, *launcher]


async def run_limited(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    limits: ProcessLimits,
    mode: Literal["exec", "python"],
    binds: Sequence[Bind] = (),
) -> ProcessResult:
    """Run ``argv`` (``mode="exec"``: an absolute program path and its arguments;
    ``mode="python"``: the path of a Python file) under ``limits`` and collect its output.

    Args:
        argv: what to run (see above).
        cwd: the working folder (inside one of ``binds`` when sandboxed).
        env: the child's whole environment.
        limits: the limits of the call.
        mode: run a program, or a Python file in the launcher's interpreter.
        binds: host folders the sandbox shows (the workspace, a temporary home...); the
            program, when outside the system folders, must be among them.

    Raises:
        ToolFailure: the sandbox is required but does not work here.
        OSError: the launcher could not be started at all.
    """
    sandbox = await _isolation(limits)
    command = [*await _command(limits, mode, sandbox, binds, cwd), *argv]
    skip_levels = 2 if sandbox is not None else 0  # bwrap and its namespace's init

    started = anyio.current_time()
    process = await anyio.open_process(
        command,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,  # its own process group, killable as a whole
    )
    pgid = process.pid
    stdout = OutputCapture(limits.max_output_bytes)
    stderr = OutputCapture(limits.max_output_bytes)
    over: list[LimitExceeded] = []
    timed_out = False
    try:
        async with anyio.create_task_group() as tg:
            out_done, err_done = anyio.Event(), anyio.Event()
            tg.start_soon(_drain, process.stdout, stdout, out_done)
            tg.start_soon(_drain, process.stderr, stderr, err_done)
            with anyio.move_on_after(limits.timeout_s) as deadline:
                async with anyio.create_task_group() as watch:
                    watch.start_soon(
                        _supervise, pgid, skip_levels, limits, over, watch.cancel_scope
                    )
                    await _wait_exit(process)
                    watch.cancel_scope.cancel()
            timed_out = deadline.cancelled_caught and not over
            await _stop(process)
            with anyio.move_on_after(_DRAIN_GRACE_S):
                await out_done.wait()
                await err_done.wait()
            tg.cancel_scope.cancel()
    finally:
        # Runs on cancellation too: the tree must not outlive a cancelled tool call.
        with anyio.CancelScope(shield=True):
            await _stop(process)
            with anyio.move_on_after(_REAP_TIMEOUT_S):
                await process.aclose()
    duration = anyio.current_time() - started

    code = process.returncode
    kind: Literal["exited", "killed", "timed_out", "over_limit"]
    if over:
        kind = "over_limit"
    elif timed_out:
        kind = "timed_out"
    elif code is not None and code < 0:
        kind = "killed"
    else:
        kind = "exited"
    return ProcessResult(
        kind=kind,
        exit_code=code if kind == "exited" else None,
        signal_name=_signal_name(-code) if kind == "killed" and code is not None else None,
        exceeded=over[0] if over else None,
        stdout=stdout.text(),
        stderr=stderr.text(),
        pid=process.pid,
        duration_s=duration,
    )


async def _stop(process: Process) -> None:
    """Kill every process of the call and reap the one we started."""
    if process.returncode is None:
        # Still alive, so its pid is still its own: walk its tree (setsid escapees too).
        await anyio.to_thread.run_sync(_supervisor.kill_tree, process.pid)
    # Also after a normal exit: background children would keep the pipes open.
    _kill_group(process.pid)
    with anyio.move_on_after(_REAP_TIMEOUT_S):
        await _wait_exit(process)
