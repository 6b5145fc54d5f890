"""Running an agent from synchronous code (scripts, notebooks without a running loop)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from ._engines import close_default_engine

if TYPE_CHECKING:
    from ._agent import Agent
    from ._records import RunResult


def run_sync(agent: Agent, message: str) -> RunResult:
    """Start an event loop, answer ``message``, and stop any engine this call started.

    An engine object given to the agent is left running (the caller owns it).
    """

    async def main() -> RunResult:
        try:
            return await agent.run(message)
        finally:
            if not (agent.engine is not None and not isinstance(agent.engine, str)):
                await close_default_engine()

    return anyio.run(main)
