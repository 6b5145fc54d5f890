"""Running a child process under limits: time, memory, output size, network, and cleanup.

The ``python`` and ``shell`` tools share this runner. The child starts in a new session
(so its process group id is its pid) through ``_launcher.py``, which sets the resource
limits inside the child. Whatever happens — normal exit, timeout, cancellation of the
caller — the whole process group is killed with SIGKILL before the call returns, so no
background child outlives its tool call (short of one that calls ``setsid`` itself).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio
from anyio.abc import ByteReceiveStream, Process

from ._capture import OutputCapture

LAUNCHER = Path(__file__).with_name("_launcher.py")
_REAP_TIMEOUT_S = 2.0  # a SIGKILLed process is reaped in milliseconds; this bounds the wait
_DRAIN_GRACE_S = 1.0  # a setsid escapee may hold our pipes open; do not wait on it for long


@dataclass(frozen=True, slots=True)
class ProcessLimits:
    """Limits of one child process run by the ``python`` or ``shell`` tool.

    Attributes:
        timeout_s: wall-clock limit; the process group is killed when it passes.
        memory_bytes: address-space limit (RLIMIT_AS) of each process; None: inherited.
        max_output_bytes: the most bytes of stdout (and, separately, of stderr) returned;
            the head and tail are kept around a truncation marker.
        max_file_bytes: the largest file the process may write (RLIMIT_FSIZE); None: inherited.
        isolate_network: run in a new network namespace when ``unshare`` allows it, and
            (for Python) refuse socket use inside the interpreter. Best effort, not a sandbox.
    """

    timeout_s: float = 10.0
    memory_bytes: int | None = 512 * 2**20
    max_output_bytes: int = 32_000
    max_file_bytes: int | None = 64 * 2**20
    isolate_network: bool = True

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"ProcessLimits.timeout_s must be positive, got {self.timeout_s}")
        if self.memory_bytes is not None and self.memory_bytes < 32 * 2**20:
            # Below this the interpreter that applies the limits cannot even start.
            raise ValueError(
                f"ProcessLimits.memory_bytes must be at least 32 MiB, got {self.memory_bytes}"
            )
        if self.max_output_bytes <= 0:
            raise ValueError(
                f"ProcessLimits.max_output_bytes must be positive, got {self.max_output_bytes}"
            )
        if self.max_file_bytes is not None and self.max_file_bytes <= 0:
            raise ValueError(
                f"ProcessLimits.max_file_bytes must be positive, got {self.max_file_bytes}"
            )

    def rlimits(self) -> dict[str, int]:
        """The resource limits the launcher sets in the child."""
        # CPU time backs up the wall clock: if the agent dies, a busy orphan still stops.
        limits = {"CPU": math.ceil(self.timeout_s) + 1, "CORE": 0}
        if self.memory_bytes is not None:
            limits["AS"] = self.memory_bytes
        if self.max_file_bytes is not None:
            limits["FSIZE"] = self.max_file_bytes
        return limits


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """How a limited process ended, and what it printed (each stream already bounded).

    ``kind`` says which of ``exit_code`` (exited) and ``signal_name`` (killed) is set;
    a timed-out process was killed by us and has neither.
    """

    kind: Literal["exited", "killed", "timed_out"]
    exit_code: int | None
    signal_name: str | None
    stdout: str
    stderr: str
    pid: int
    duration_s: float

    def status_line(self) -> str:
        """One line describing how the process ended."""
        if self.kind == "exited":
            return f"exit status {self.exit_code}"
        if self.kind == "killed":
            return f"killed by signal {self.signal_name}"
        return f"timed out after {self.duration_s:.1f} s; the process and its children were killed"

    def render(self) -> str:
        """The result as the model reads it: status, then each non-empty stream."""
        parts = [f"[{self.status_line()}]"]
        for label, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            if text:
                parts.append(f"--- {label} ---\n{text.rstrip(chr(10))}")
        if not self.stdout and not self.stderr:
            parts.append("(no output)")
        return "\n".join(parts)


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


async def run_limited(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    limits: ProcessLimits,
    mode: Literal["exec", "python"],
) -> ProcessResult:
    """Run ``argv`` (``mode="exec"``: an absolute program path and its arguments;
    ``mode="python"``: the path of a Python file) under ``limits`` and collect its output.

    Raises:
        OSError: the launcher could not be started at all.
    """
    config = {
        "rlimits": limits.rlimits(),
        "block_network": limits.isolate_network and mode == "python",
        "mode": mode,
    }
    # -I: ignore the agent's PYTHON* variables, user site and script folder; -u: output
    # printed before a timeout still reaches us; -B: no .pyc files in the workspace.
    python_flags = ["-I", "-u", "-B", "-X", "utf8"] if mode == "python" else ["-I", "-S"]
    prefix = await _network.prefix() if limits.isolate_network else ()
    command = [*prefix, sys.executable, *python_flags, str(LAUNCHER), json.dumps(config), "--"]
    command.extend(argv)

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
    timed_out = False
    try:
        async with anyio.create_task_group() as tg:
            out_done, err_done = anyio.Event(), anyio.Event()
            tg.start_soon(_drain, process.stdout, stdout, out_done)
            tg.start_soon(_drain, process.stderr, stderr, err_done)
            with anyio.move_on_after(limits.timeout_s) as deadline:
                await _wait_exit(process)
            timed_out = deadline.cancelled_caught
            # Also after a normal exit: background children would keep the pipes open.
            _kill_group(pgid)
            with anyio.move_on_after(_REAP_TIMEOUT_S):
                await _wait_exit(process)
            with anyio.move_on_after(_DRAIN_GRACE_S):
                await out_done.wait()
                await err_done.wait()
            tg.cancel_scope.cancel()
    finally:
        # Runs on cancellation too: the tree must not outlive a cancelled tool call.
        with anyio.CancelScope(shield=True):
            _kill_group(pgid)
            with anyio.move_on_after(_REAP_TIMEOUT_S):
                await _wait_exit(process)
                await process.aclose()
    duration = anyio.current_time() - started

    code = process.returncode
    if timed_out:
        kind: Literal["exited", "killed", "timed_out"] = "timed_out"
    elif code is not None and code < 0:
        kind = "killed"
    else:
        kind = "exited"
    return ProcessResult(
        kind=kind,
        exit_code=code if kind == "exited" else None,
        signal_name=_signal_name(-code) if kind == "killed" and code is not None else None,
        stdout=stdout.text(),
        stderr=stderr.text(),
        pid=process.pid,
        duration_s=duration,
    )
