"""``IdleSweeper``: releases the engine state of conversations nobody came back to.

A chat session waiting for its client's tools, or a stored response ending in function
calls, keeps its blocks pinned in the engine (hints, split A) in case the client
returns. A client that never does would pin them until some later request noticed; so
one background task per server wakes every ``period_s`` (not one timer per session),
collects the sessions whose time ran out from every source (the chat sessions' idle TTL,
the response store's TTL and LRU), cancels their split prefills and releases them.

Time comes from a ``ServerClock``: tests pass one whose ``sleep`` waits for the test to
advance it, so a sweep happens exactly when the test says, with no real sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import anyio

from agentrt.engine import Engine, SessionId

from ._split_prefill import SplitPrefills

log = logging.getLogger("agentrt.server")

ExpiredSource = Callable[[], Sequence[SessionId]]
"""Hands out (once) the sessions whose engine state should be released now."""

_MAX_PERIOD_S = 10.0


class ServerClock(Protocol):
    """The server's monotonic time, and a way to wait on it."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """Real time: ``time.monotonic`` and ``anyio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


def sweep_period(*ttls_s: float) -> float:
    """How often to sweep: a quarter of the shortest TTL (a session is released within
    1.25x its TTL), at most ``_MAX_PERIOD_S``."""
    return min(_MAX_PERIOD_S, min(ttls_s) / 4)


class IdleSweeper:
    """One periodic task that releases expired sessions.

    Args:
        engine: where releases go.
        clock: the server clock.
        period_s: time between sweeps.
        sources: where expired sessions come from.
        splits: split prefills to cancel for a released session.

    Invariant: at most one sweep task per sweeper; every session a source hands out is
    released exactly once (a failed release is logged, not retried).
    """

    def __init__(
        self,
        engine: Engine,
        clock: ServerClock,
        period_s: float,
        sources: Sequence[ExpiredSource],
        splits: SplitPrefills,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.period_s = period_s
        self.sources = tuple(sources)
        self.splits = splits
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the sweep task (on the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def sweep(self) -> list[SessionId]:
        """Release what expired now; returns the sessions released."""
        expired = [s for source in self.sources for s in source()]
        for session in expired:
            self.splits.cancel(session)
            try:
                await self.engine.release(session)
            except Exception as exc:  # one failed release must not stop the sweeps
                log.warning("releasing idle session %s failed: %s", session, exc)
        return expired

    async def _loop(self) -> None:
        while True:
            await self.clock.sleep(self.period_s)
            await self.sweep()

    async def aclose(self) -> None:
        """Stop sweeping (the server is stopping)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
