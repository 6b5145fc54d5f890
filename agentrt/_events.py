"""Events a streamed agent run yields, each tagged by its ``kind``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ._executor import ToolCallId, ToolResult
from ._records import IterationRecord, RunId, RunResult


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: RunId
    t: float
    kind: Literal["run_started"] = "run_started"


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """Decoded text of one engine delta (tool-call markup included, as the model wrote it)."""

    iteration: int
    text: str
    token_ids: tuple[int, ...]
    t: float
    kind: Literal["token"] = "token"


@dataclass(frozen=True, slots=True)
class ToolCallDetected:
    """A call was parsed from the stream (before the model finished, with stream_tools)."""

    iteration: int
    call_id: ToolCallId
    name: str
    arguments: dict[str, Any] | None
    t: float
    kind: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True, slots=True)
class ToolStarted:
    call_id: ToolCallId
    name: str
    t: float
    kind: Literal["tool_started"] = "tool_started"


@dataclass(frozen=True, slots=True)
class ToolFinished:
    call_id: ToolCallId
    name: str
    result: ToolResult
    t: float
    kind: Literal["tool_finished"] = "tool_finished"


@dataclass(frozen=True, slots=True)
class IterationFinished:
    record: IterationRecord
    kind: Literal["iteration_finished"] = "iteration_finished"


@dataclass(frozen=True, slots=True)
class FinalAnswerStarted:
    """The final answer's first token (``t``). Sent at that token when the response
    cannot call tools; otherwise as soon as the response ends without calls."""

    iteration: int
    t: float
    kind: Literal["final_answer_started"] = "final_answer_started"


@dataclass(frozen=True, slots=True)
class RunDone:
    result: RunResult
    kind: Literal["done"] = "done"


RunEvent = (
    RunStarted
    | TokenEvent
    | ToolCallDetected
    | ToolStarted
    | ToolFinished
    | IterationFinished
    | FinalAnswerStarted
    | RunDone
)
