"""``FakeClock``: a server clock a test advances, so idle TTLs expire and the idle
sweeper sweeps exactly when the test says, without real sleeps."""

from __future__ import annotations

import anyio


class FakeClock:
    """``now`` is what the test set; the sweeper's ``sleep`` returns when ``advance`` says.

    Invariant: ``advance`` returns only after the sweeper has swept once at the new time
    and is waiting again.
    """

    def __init__(self) -> None:
        self.t = 1000.0
        self._asleep = anyio.Event()
        self._wake = anyio.Event()

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self._asleep.set()
        await self._wake.wait()
        self._wake = anyio.Event()

    async def advance(self, dt: float) -> None:
        """Move time on by ``dt`` and let the sweeper run one sweep to its end."""
        with anyio.fail_after(10):
            await self._asleep.wait()  # the sweeper is waiting for time to pass
            self._asleep = anyio.Event()
            self.t += dt
            self._wake.set()
            await self._asleep.wait()  # it swept, and waits again
