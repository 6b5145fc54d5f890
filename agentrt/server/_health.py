"""What ``/health`` says about the engine, without waiting on a busy one.

Asking an engine for its statistics is the proof that it is alive, but an embedded vLLM
answers between two steps of its engine core, and one step can take seconds (a long
prefill, compiling a grammar on a CPU). ``/health`` must answer at once all the same, so
the probe runs beside it, and the answer is the last verdict:

    probe finished with stats         -> healthy
    probe finished with an error      -> unhealthy (503) at once
    probe running for < DEAD_AFTER_S  -> as the last verdict said (busy is not dead)
    probe running for >= DEAD_AFTER_S -> unhealthy (the engine does not answer)

Each ``/health`` starts a probe unless one is running, and waits a moment for it, so a
failure shows on the next call. Until the first probe ends there is no verdict, and
``/health`` waits for it (up to ``FIRST_WAIT_S``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from agentrt.engine import Engine

DEAD_AFTER_S = 10.0
FIRST_WAIT_S = 2.0
_SETTLE_S = 0.01  # long enough for a probe that fails at once


class EngineWatch:
    """The engine's liveness as ``/health`` reports it (see module docstring).

    Invariant: at most one probe runs at a time; ``_ok`` is the verdict of the last
    probe that ended (None before the first).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._ok: bool | None = None
        self._probe: asyncio.Task[None] | None = None
        self._started = 0.0

    async def healthy(self) -> bool:
        """Start a probe if none runs, wait briefly for it, and judge."""
        if self._probe is None or self._probe.done():
            self._started = time.monotonic()
            self._probe = asyncio.get_running_loop().create_task(self._run())
        wait = FIRST_WAIT_S if self._ok is None else _SETTLE_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._probe), wait)
        if not self._probe.done() and time.monotonic() - self._started >= DEAD_AFTER_S:
            return False
        return bool(self._ok)

    async def _run(self) -> None:
        try:
            await self._engine.stats()
        except Exception:
            self._ok = False
        else:
            self._ok = True

    async def aclose(self) -> None:
        """Stop a probe still running (server shutdown)."""
        if self._probe is not None and not self._probe.done():
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
