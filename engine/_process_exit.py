"""SIGTERM unwinds a process that runs vLLM in-process, instead of ending it on the spot.

vLLM's engine core is a child process. Killed outright by SIGTERM's default action, the
parent runs no clean-up and the engine core is orphaned, holding its memory (and, on a
GPU, the device) until someone kills it. Raised as ``SystemExit`` instead, SIGTERM lets
asyncio cancel every task, so each ``finally`` — ``engine.aclose()`` — runs, like Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def unwind_on_sigterm() -> bool:
    """Install the SIGTERM-as-``SystemExit(143)`` handler; returns whether it did.

    Invariant: only SIGTERM's default disposition is replaced, and only from the main
    thread (the one place Python runs signal handlers). A program that chose its own
    handling — ignoring SIGTERM, or a handler like ``agentrt serve``'s graceful stop — keeps
    it; such a handler installed later simply replaces this one.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return False
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return True
