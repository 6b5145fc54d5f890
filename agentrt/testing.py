"""Test helpers for agents: an event loop on virtual time, so timings are exact.

On ``VirtualClockLoop`` the clock only moves when every task is waiting on a timer:
it then jumps straight to the next timer. With ``ScriptedEngine`` and async tools that
``await anyio.sleep(...)``, an agent run's FTR is exactly what the timing model says,
however loaded the machine is, and a minute of simulated time takes milliseconds.

Tools that run in threads or subprocesses still work, but take no virtual time.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector:
    """Wraps the loop's selector: an idle wait becomes a jump of the virtual clock."""

    def __init__(self, inner: selectors.BaseSelector, loop: VirtualClockLoop) -> None:
        self._inner = inner
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # No timer pending: only I/O or another thread can wake us, so really wait.
            return self._inner.select(None)
        self._loop.advance(timeout)
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose ``time()`` is virtual and jumps over idle waits.

    Invariant: virtual time never goes backwards and advances only while no callback
    is ready to run.
    """

    def __init__(self) -> None:
        super().__init__()
        self._virtual_now = 0.0
        # asyncio keeps its selector in a private attribute; wrap it in place.
        inner: selectors.BaseSelector = vars(self)["_selector"]
        vars(self)["_selector"] = _JumpingSelector(inner, self)

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self._virtual_now += seconds


def run_virtual(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``fn(*args)`` to completion on a fresh ``VirtualClockLoop``."""
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(fn(*args))  # type: ignore[arg-type]
