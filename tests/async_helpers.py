"""Waiting helpers for tests: wait on a condition with a deadline, never a fixed sleep."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    """Re-evaluate an async predicate until it holds (for state with no event to wait on).

    Raises:
        TimeoutError: it did not hold within ``timeout_s``.
    """
    with anyio.fail_after(timeout_s):
        while not await check():
            await anyio.sleep(0.05)
