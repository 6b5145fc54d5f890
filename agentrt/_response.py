"""One LLM call: stream the response, parse tool calls as they close, hand each on at once.

    engine.generate ──deltas──► TokenEvent ──text──► parser ──call closes──► on_call(call)
                                                        └──text──► Response.content

What acts on the stream as it goes lives here too: a call equal to an earlier one of
the same response ends the response there (the request is aborted, the repeat dropped),
and a call cut off by the end of the response (``max_tokens``) is kept apart as
``Response.truncated``, never handed on to run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from agentrt.engine import Engine, EngineError, GenerateRequest, RequestStats, ToolCallPart
from agentrt.engine._clock import now
from agentrt.engine._formats import stats_at_cut

from ._events import (
    Emit,
    FinalAnswerStarted,
    RepeatedCallCut,
    TokenEvent,
    ToolCallDetected,
    ToolCallTruncated,
)
from ._executor import ToolCallId
from ._parsers import (
    MalformedCall,
    ParsedCall,
    ParseEvent,
    RepeatGuard,
    TextPiece,
    ToolCallParser,
)
from ._records import RunId


@dataclass(frozen=True, slots=True)
class DetectedCall:
    """A tool call parsed from a response, and when its last character arrived."""

    call_id: ToolCallId
    call: ParsedCall | MalformedCall
    detected_t: float

    @property
    def name(self) -> str:
        """The tool's name ("" for a call too malformed to name one)."""
        return self.call.name if isinstance(self.call, ParsedCall) else ""


@dataclass(frozen=True, slots=True)
class Response:
    """What one LLM call produced. ``stats`` is None only if the engine sent none.

    ``truncated``: the call the response ended inside (``max_tokens``), with its name and
    the arguments' text so far; it is in none of ``calls`` and must never run.
    ``repeat_cut``: the response was stopped at a call repeating an earlier one.
    """

    token_ids: tuple[int, ...]
    content: str
    calls: tuple[DetectedCall, ...]
    stats: RequestStats | None
    truncated: MalformedCall | None = None
    repeat_cut: bool = False


def call_parts(calls: Sequence[DetectedCall]) -> tuple[ToolCallPart, ...]:
    """The well-formed ``calls`` as they go into the assistant's message."""
    return tuple(
        ToolCallPart(d.call_id, d.call.name, d.call.arguments_json)
        for d in calls
        if isinstance(d.call, ParsedCall)
    )


OnCall = Callable[[DetectedCall], None]


async def stream_response(
    engine: Engine,
    request: GenerateRequest,
    parser: ToolCallParser,
    *,
    run_id: RunId,
    iteration: int,
    emit: Emit,
    on_call: OnCall | None,
    final_known: bool,
    cut_repeats: bool = True,
) -> Response:
    """Send ``request`` and follow its stream to the end.

    Args:
        parser: a fresh parser of the model's tool-call format.
        on_call: called the moment each call closes (streamed tool dispatch), or None.
        final_known: this response cannot call tools, so its first token is the final
            answer's (``FinalAnswerStarted`` is emitted then).
        cut_repeats: stop the response at the first call that repeats an earlier one.

    Raises:
        EngineError: the engine failed the request.
    """
    token_ids: list[int] = []
    text: list[str] = []
    calls: list[DetectedCall] = []
    stats: RequestStats | None = None
    truncated: list[MalformedCall] = []
    guard = RepeatGuard(parser) if cut_repeats else None
    reader: ToolCallParser = guard if guard is not None else parser

    def take(events: Sequence[ParseEvent], t: float) -> None:
        for ev in events:
            if isinstance(ev, TextPiece):
                text.append(ev.text)
                continue
            if isinstance(ev, MalformedCall) and ev.unfinished:
                truncated.append(ev)
                emit(ToolCallTruncated(iteration, ev.name or "", ev.arguments_text, t))
                continue
            detected = DetectedCall(ToolCallId(f"call_{run_id[-8:]}_{iteration}_{ev.index}"), ev, t)
            calls.append(detected)
            args = ev.arguments if isinstance(ev, ParsedCall) else None
            emit(ToolCallDetected(iteration, detected.call_id, detected.name, args, t))
            if on_call is not None:
                on_call(detected)

    arrival = now()
    first_t: float | None = None
    async with aclosing(engine.generate(request)) as stream:
        async for delta in stream:
            if delta.token_ids and not token_ids:
                first_t = delta.t
                if final_known:
                    emit(FinalAnswerStarted(iteration, delta.t))
            token_ids.extend(delta.token_ids)
            emit(TokenEvent(iteration, delta.text, delta.token_ids, delta.t, delta.logprobs or ()))
            if delta.text:
                take(reader.feed(delta.text), delta.t)
            if delta.stats is not None:
                stats = delta.stats
            if guard is not None and guard.repeat is not None:
                # Leaving the loop closes the stream, which aborts the engine request.
                t = now()
                emit(RepeatedCallCut(iteration, guard.repeat.name, len(token_ids), t))
                if stats is None:
                    stats = stats_at_cut(
                        request,
                        output_tokens=len(token_ids),
                        arrival_t=arrival,
                        first_token_t=first_t,
                        t=t,
                    )
                break
    take(reader.finish(), stats.finish_t if stats else now())
    if stats is not None and stats.finish_reason == "error":
        raise EngineError(f"engine failed the request: {stats.error}")
    return Response(
        tuple(token_ids),
        "".join(text).strip(),
        tuple(calls),
        stats,
        truncated[0] if truncated else None,
        repeat_cut=guard is not None and guard.repeat is not None,
    )
