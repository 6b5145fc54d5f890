"""Events a streamed agent run yields, each tagged by its ``kind``, and how they stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from agentrt.engine import TokenLogprob

from ._executor import ToolCallId, ToolResult
from ._records import IterationRecord, RunId, RunResult


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: RunId
    t: float
    kind: Literal["run_started"] = "run_started"


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """Decoded text of one engine delta (tool-call markup included, as the model wrote it).
    ``logprobs``: one per token of ``token_ids`` when the request asked for them, else
    empty."""

    iteration: int
    text: str
    token_ids: tuple[int, ...]
    t: float
    logprobs: tuple[TokenLogprob, ...] = ()
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
class ToolCallTruncated:
    """The response ended (``max_tokens``) inside a call: it is never run, and the run
    ends with an error. ``arguments_text`` is what the model wrote of the arguments."""

    iteration: int
    name: str
    arguments_text: str
    t: float
    kind: Literal["tool_call_truncated"] = "tool_call_truncated"


@dataclass(frozen=True, slots=True)
class RepeatedCallCut:
    """The response repeated an earlier call of its own: decoding stopped there (after
    ``output_tokens``) and the repeat was dropped."""

    iteration: int
    name: str
    output_tokens: int
    t: float
    kind: Literal["repeated_call_cut"] = "repeated_call_cut"


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
    | ToolCallTruncated
    | RepeatedCallCut
    | ToolStarted
    | ToolFinished
    | IterationFinished
    | FinalAnswerStarted
    | RunDone
)

Emit = Callable[[RunEvent], None]
"""Where a run sends its events, in order."""


@dataclass(frozen=True, slots=True)
class _Failed:
    """Carries the driving task's exception to the stream's consumer."""

    error: BaseException


async def stream_events(
    drive: Callable[[Emit], Awaitable[object]],
) -> AsyncGenerator[RunEvent, None]:
    """Run ``drive(emit)`` in a task and yield what it emits, up to ``RunDone``.

    The task's exception is raised to the consumer; closing the iterator early cancels
    the task.
    """
    queue: asyncio.Queue[RunEvent | _Failed] = asyncio.Queue()

    async def run() -> None:
        try:
            await drive(queue.put_nowait)
        except BaseException as exc:
            queue.put_nowait(_Failed(exc))
            raise

    task = asyncio.get_running_loop().create_task(run())
    try:
        while True:
            event = await queue.get()
            if isinstance(event, _Failed):
                raise event.error
            yield event
            if isinstance(event, RunDone):
                return
    finally:
        if not task.done():
            task.cancel()
        # The consumer already got the error, or left early: nothing more to report.
        with contextlib.suppress(BaseException):
            await task
