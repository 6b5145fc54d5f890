"""Test helpers for the process-running tools: is a pid still a running process?"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio

from agentrt.tools._sandbox import Bubblewrap, NoSandbox, find_sandbox


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie — dead, not yet reaped — is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The state letter follows the parenthesized command name, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def marked_processes(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker``.

    Processes in another PID namespace (a sandbox) report pids of their own, so tests
    find a snippet's processes by a marker in their arguments instead.
    """
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline and running(int(name)):
            found.append(int(name))
    return found


def sandbox_here() -> Bubblewrap | NoSandbox:
    """The sandbox this machine offers, found from synchronous code.

    Fixtures run while the session's event loop may already run in this thread (pytest's
    async plugin), so the probe gets an event loop of its own on a worker thread.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(anyio.run, find_sandbox).result()
