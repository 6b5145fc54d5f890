"""Replay tools: async ``Tool`` objects named as in the trace that sleep and return the
recorded result.

Every call carries its replay key (``{"id": "<key>"}``, plus the recorded arguments for
text traces); the key names one recorded tool call, whose reply is looked up here. A
call sleeps ``latency_s x tool_factor`` and then the *next* LLM call's ``gap_s`` (the
client's think time before sending it), so the orchestrator sends the next call exactly
when the recorded client did; parallel calls each add the gap, which leaves the batch's
end at ``max(latency x factor) + gap``.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from agentrt.tools import Tool, ToolFailure

_PARAMETERS: Mapping[str, Any] = {
    "type": "object",
    "properties": {"id": {"type": "string", "description": "which recorded call this is"}},
    "required": ["id"],
}


@dataclass(frozen=True, slots=True)
class ToolReply:
    """What one recorded tool call does in replay: sleep, then return ``text``."""

    name: str
    text: str
    sleep_s: float

    def __post_init__(self) -> None:
        if not self.sleep_s >= 0:
            raise ValueError(f"ToolReply.sleep_s must be >= 0, got {self.sleep_s!r}")


def replay_tools(replies: Mapping[str, ToolReply], names: Sequence[str] = ()) -> list[Tool]:
    """One tool per name (those of ``replies`` plus ``names``), sorted by name.

    Each tool's ``expected_latency_s`` is the median sleep of its replies (the guess the
    orchestrator uses for split-prefill TTLs until it has measured the tool). Tools have
    no timeout: the replay decides how long they take.

    Raises:
        ValueError: a name is not a valid tool name.
    """
    by_name: dict[str, list[float]] = {n: [] for n in names}
    for reply in replies.values():
        by_name.setdefault(reply.name, []).append(reply.sleep_s)
    return [
        _tool(name, replies, statistics.median(sleeps) if sleeps else None)
        for name, sleeps in sorted(by_name.items())
    ]


def _tool(name: str, replies: Mapping[str, ToolReply], expected_s: float | None) -> Tool:
    async def replay(id: str, **_recorded: Any) -> str:
        reply = replies.get(id)
        if reply is None or reply.name != name:
            raise ToolFailure(f"no recorded call of {name!r} has id {id!r}")
        await anyio.sleep(reply.sleep_s)
        return reply.text

    return Tool(
        name=name,
        description=f"Replays the recorded results of the tool {name!r}.",
        parameters=_PARAMETERS,
        fn=replay,
        timeout_s=None,
        expected_latency_s=expected_s,
        side_effect_free=True,
    )
