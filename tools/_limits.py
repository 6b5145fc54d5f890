"""The limits of one python or shell tool call, and how such a call ended.

The limits hold for the whole call, not for each process alone: the memory of all the
call's processes is added up, and the processes and threads alive at once are counted
(see ``_supervisor``). They also hold when the agent runs as root, where the kernel's
per-user process limit (RLIMIT_NPROC) does not apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

SandboxMode = Literal["auto", "required", "off"]


def mib(n: int) -> str:
    """Bytes as the model reads them: '256 MiB'."""
    return f"{n / 2**20:g} MiB"


@dataclass(frozen=True, slots=True)
class ProcessLimits:
    """Limits of one call of the ``python`` or ``shell`` tool.

    Attributes:
        timeout_s: wall-clock limit; every process of the call is killed when it passes.
        memory_bytes: the most resident memory all processes of the call may use together
            (their private and shared-memory pages, added up); each process also gets it
            as its address-space limit (RLIMIT_AS). None: no limit.
        max_processes: the most processes and threads alive at once in the call (threads
            count, as they do for the kernel's RLIMIT_NPROC: a numerical library that
            starts a thread per core needs a limit above the core count). None: no limit.
        max_output_bytes: the most bytes of stdout (and, separately, of stderr) returned;
            the head and tail are kept around a truncation marker.
        max_file_bytes: the largest file the process may write (RLIMIT_FSIZE), and the
            size of the sandbox's /tmp and /dev/shm; None: inherited, unbounded.
        isolate_network: no network: the sandbox's own network namespace (or, without a
            sandbox, one from ``unshare`` where permitted), and for Python a socket guard.
        sandbox: "auto" runs each call in bubblewrap where it works here and otherwise
            with weaker isolation (logged once); "required" refuses to run without it;
            "off" never uses it.
    """

    timeout_s: float = 10.0
    memory_bytes: int | None = 512 * 2**20
    max_processes: int | None = 256
    max_output_bytes: int = 32_000
    max_file_bytes: int | None = 64 * 2**20
    isolate_network: bool = True
    sandbox: SandboxMode = "auto"

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"ProcessLimits.timeout_s must be positive, got {self.timeout_s}")
        if self.memory_bytes is not None and self.memory_bytes < 32 * 2**20:
            # Below this the interpreter that applies the limits cannot even start.
            raise ValueError(
                f"ProcessLimits.memory_bytes must be at least 32 MiB, got {self.memory_bytes}"
            )
        if self.max_processes is not None and self.max_processes < 2:
            # The program itself and one more: anything less could not start a child.
            raise ValueError(
                f"ProcessLimits.max_processes must be at least 2, got {self.max_processes}"
            )
        if self.max_output_bytes <= 0:
            raise ValueError(
                f"ProcessLimits.max_output_bytes must be positive, got {self.max_output_bytes}"
            )
        if self.max_file_bytes is not None and self.max_file_bytes <= 0:
            raise ValueError(
                f"ProcessLimits.max_file_bytes must be positive, got {self.max_file_bytes}"
            )
        if self.sandbox not in ("auto", "required", "off"):
            raise ValueError(
                f"ProcessLimits.sandbox must be 'auto', 'required' or 'off', got {self.sandbox!r}"
            )

    def rlimits(self) -> dict[str, int]:
        """The per-process resource limits the launcher sets in the child."""
        # CPU time backs up the wall clock: if the agent dies, a busy orphan still stops.
        limits = {"CPU": math.ceil(self.timeout_s) + 1, "CORE": 0}
        if self.memory_bytes is not None:
            limits["AS"] = self.memory_bytes
        if self.max_file_bytes is not None:
            limits["FSIZE"] = self.max_file_bytes
        return limits


@dataclass(frozen=True, slots=True)
class LimitExceeded:
    """Which limit of the whole call the supervisor saw passed, and by how much."""

    what: Literal["memory", "processes"]
    limit: int
    seen: int

    def describe(self) -> str:
        """One clause for the status line."""
        if self.what == "memory":
            return (
                f"its processes used {mib(self.seen)} of memory together, over the "
                f"limit of {mib(self.limit)}"
            )
        return (
            f"{self.seen} processes and threads were running at once, over the limit "
            f"of {self.limit}"
        )


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """How a limited process ended, and what it printed (each stream already bounded).

    ``kind`` says which of ``exit_code`` (exited), ``signal_name`` (killed) and
    ``exceeded`` (over_limit) is set; a timed-out process was killed by us and has none.
    """

    kind: Literal["exited", "killed", "timed_out", "over_limit"]
    exit_code: int | None
    signal_name: str | None
    exceeded: LimitExceeded | None
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
        if self.kind == "over_limit" and self.exceeded is not None:
            return f"stopped: {self.exceeded.describe()}; all its processes were killed"
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
