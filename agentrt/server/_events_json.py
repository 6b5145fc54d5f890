"""The SDK's tagged event and result dataclasses as JSON values (the agent-run wire format).

A generic walk over dataclass fields, with three choices made for clients:

* times: the SDK stamps events with the loop's monotonic clock, which means nothing to
  another machine; every ``t`` / ``*_t`` field becomes seconds since the run's arrival;
* chat messages take OpenAI's shape (``tool_calls[].function.arguments``);
* ids are the REST run's id, not the SDK session's internal one.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from agentrt import RunDone, RunEvent, RunResult, RunStarted, TokenEvent
from agentrt.engine import ChatMessage
from agentrt.engine._chat import message_to_openai

_SPANS = frozenset({"split_prefill_span"})


def to_json(value: Any, t0: float) -> Any:
    """``value`` as plain JSON data, with monotonic times rebased on ``t0``."""
    if isinstance(value, ChatMessage):
        return message_to_openai(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if (f.name == "t" or f.name.endswith("_t")) and isinstance(v, float):
                out[f.name] = round(v - t0, 6)
            elif f.name in _SPANS and isinstance(v, tuple):
                out[f.name] = [round(x - t0, 6) for x in v]
            else:
                out[f.name] = to_json(v, t0)
        return out
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, Mapping):
        return {str(k): to_json(v, t0) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v, t0) for v in value]
    return value


def result_json(result: RunResult, run_id: str) -> dict[str, Any]:
    """A finished run's result, with the totals a client would otherwise recompute."""
    out: dict[str, Any] = to_json(result, result.arrival_t)
    out["run_id"] = run_id
    out["tool_time_s"] = round(result.tool_time_s, 6)
    out["tool_overlap_s"] = round(result.tool_overlap_s, 6)
    out["cached_tokens"] = list(result.cached_tokens)
    return out


def event_json(event: RunEvent, run_id: str, t0: float) -> dict[str, Any]:
    """One stream event; ``kind`` tells which (``run_started``, ``token``, ... ``done``)."""
    if isinstance(event, TokenEvent):
        # One per decoded delta: built directly, the generic walk would dominate.
        return {
            "iteration": event.iteration,
            "text": event.text,
            "token_ids": list(event.token_ids),
            "t": round(event.t - t0, 6),
            "kind": "token",
        }
    if isinstance(event, RunDone):
        return {"result": result_json(event.result, run_id), "kind": "done"}
    out: dict[str, Any] = to_json(event, t0)
    if isinstance(event, RunStarted):
        out["run_id"] = run_id
    return out
