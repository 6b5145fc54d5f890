"""The one clock of agentrt: the running event loop's monotonic time.

Every timestamp (token deltas, tool spans, FTR) comes from here, so a test can run
the whole stack on a virtual-time loop and get exact, repeatable timings.
"""

from __future__ import annotations

import asyncio
import time


def now() -> float:
    """Seconds on the running loop's monotonic clock (``time.monotonic`` outside a loop)."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()
