"""Accounting for all processes of one tool call: count them, add up their memory, kill them.

The kernel's per-process limits do not hold for a call as a whole: RLIMIT_AS applies to
each process alone (forked children exceed it together), and RLIMIT_NPROC counts per user
and is not enforced for root at all. So the runner polls the call's process tree — every
descendant of the process it started, found through the parent links in ``/proc`` — and
stops the call when their threads outnumber ``max_processes`` or their resident memory,
added up, passes ``memory_bytes``. Orphans stay in the tree: inside the sandbox they are
re-parented to its PID-namespace init, without it to the launcher (a child subreaper).

Polling is not instantaneous: between two looks a call can overshoot by what it allocates
or forks in one interval (``POLL_S``). Inside the sandbox, where the agent does not run as
root, the kernel's RLIMIT_NPROC (counted in the sandbox's own user namespace) is a hard
bound on top.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass

from ._limits import LimitExceeded, ProcessLimits

POLL_S = 0.03
_KILL_ROUNDS = 50


@dataclass(frozen=True, slots=True)
class Usage:
    """What a call's processes hold at one moment."""

    tasks: int  # processes and threads
    memory_bytes: int  # resident private (anonymous) and shared-memory pages


def _parents() -> dict[int, tuple[int, bool]]:
    """Every process as ``pid -> (parent pid, is a zombie)``."""
    table: dict[int, tuple[int, bool]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # exited while we looked
        # The command name is in parentheses and may contain anything, even ") ".
        fields = stat.rsplit(b")", 1)[1].split()
        table[int(name)] = (int(fields[1]), fields[0] == b"Z")
    return table


def descendants(root: int, skip_levels: int = 0) -> list[tuple[int, bool]]:
    """``(pid, is a zombie)`` of ``root`` and everything below it, minus the top levels.

    Args:
        root: the process the runner started.
        skip_levels: how many levels from ``root`` down are helpers not to be counted
            (2 for the sandbox: bwrap and its PID-namespace init; 0 without it).
    """
    table = _parents()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found: list[tuple[int, bool]] = []
    level = [root] if root in table else []
    depth = 0
    while level:
        if depth >= skip_levels:
            found.extend((pid, table[pid][1]) for pid in level)
        level = [child for pid in level for child in children.get(pid, ())]
        depth += 1
    return found


def _status(pid: int) -> tuple[int, int]:
    """``(threads, resident bytes counted against the limit)`` of one process."""
    threads, kib = 1, 0
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Threads:"):
                    threads = int(line.split()[1])
                elif line.startswith((b"RssAnon:", b"RssShmem:")):
                    kib += int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass  # gone, or a zombie without memory lines
    return threads, kib * 1024


def usage(root: int, skip_levels: int = 0) -> Usage:
    """The threads and memory of a call's processes right now."""
    tasks = memory = 0
    for pid, _ in descendants(root, skip_levels):
        threads, resident = _status(pid)
        tasks += threads
        memory += resident
    return Usage(tasks, memory)


def exceeded(limits: ProcessLimits, seen: Usage) -> LimitExceeded | None:
    """The limit ``seen`` passes, if any (processes are checked first)."""
    if limits.max_processes is not None and seen.tasks > limits.max_processes:
        return LimitExceeded("processes", limits.max_processes, seen.tasks)
    if limits.memory_bytes is not None and seen.memory_bytes > limits.memory_bytes:
        return LimitExceeded("memory", limits.memory_bytes, seen.memory_bytes)
    return None


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def kill_tree(root: int) -> None:
    """SIGKILL every process below ``root``, then ``root`` and its process group.

    ``root`` goes last, stopped first (so it can neither react to its children's deaths
    nor fork): while it lives, orphans of the killed are re-parented to it (it is the
    subreaper, or the sandbox's init lies below it), so the next round finds them. A
    forking process is killed within a round or two; zombies are skipped.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(root, signal.SIGSTOP)
    for _ in range(_KILL_ROUNDS):
        alive = [pid for pid, zombie in descendants(root, skip_levels=1) if not zombie]
        if not alive:
            break
        for pid in alive:
            _kill(pid)
    _kill(root)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(root, signal.SIGKILL)
