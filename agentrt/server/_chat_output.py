"""From engine deltas to what a chat client sees: content pieces and whole tool calls.

The streamed and the non-streamed endpoint share this one assembler, so both report
the same content and the same calls for the same tokens. Calls come from the incremental
parser of the server's tool format, which emits each call exactly once, in the ``feed``
that delivers the end of its JSON (however the text was split into deltas).

Two cases differ from a plain parse. A call equal to an earlier one of the response
ends it (``stopped``: the caller stops reading, which aborts the engine request); the
calls before it are the answer. A call the response ended inside (``max_tokens``) is
returned as a call with the arguments' text so far, never as markup in the content.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from agentrt.engine import (
    EngineError,
    FinishReason,
    GenerateRequest,
    MalformedCall,
    ParsedCall,
    ParseEvent,
    RequestStats,
    TextPiece,
    TokenDelta,
    ToolCallParser,
    ToolFormat,
)
from agentrt.engine._clock import now
from agentrt.engine._formats import RepeatGuard, stats_at_cut

from ._errors import APIError

OpenAIFinish = Literal["stop", "length", "tool_calls"]


@dataclass(frozen=True, slots=True)
class CallOut:
    """A tool call as the client receives it (``index`` counts calls sent). Complete,
    except the last one of a response cut by ``max_tokens``: its arguments are the
    text written so far, maybe not valid JSON (as vLLM and OpenAI return it)."""

    index: int
    id: str
    name: str
    arguments: str


Piece = str | CallOut


class _Whitespace:
    """Drops leading and trailing whitespace of the content and defers inner runs.

    The model separates calls with newlines; without this, a response of two calls
    would also stream ``"\\n"`` as content. A deferred run is released, in order,
    with the next non-blank text.
    """

    __slots__ = ("_held", "_started")

    def __init__(self) -> None:
        self._held = ""
        self._started = False

    def feed(self, text: str) -> str:
        buf = self._held + text
        if not self._started:
            buf = buf.lstrip()
            if not buf:
                self._held = ""
                return ""
            self._started = True
        keep = len(buf.rstrip())
        self._held = buf[keep:]
        return buf[:keep]


class ChoiceAssembler:
    """Feeds delta text through the parser (when calls are parsed) and the whitespace filter.

    Args:
        calls_format: the tool format whose parser reads calls (None: all is content).
        cut_repeats: end the response at the first call that repeats an earlier one.
    """

    def __init__(self, calls_format: ToolFormat | None, *, cut_repeats: bool = True) -> None:
        parser = calls_format.parser() if calls_format is not None else None
        self._guard = RepeatGuard(parser) if parser is not None and cut_repeats else None
        self._parser: ToolCallParser | None = self._guard or parser
        self._ws = _Whitespace()
        self.calls: list[CallOut] = []
        self.content: list[str] = []
        self._arrival = now()
        self._first_t: float | None = None
        self._tokens = 0

    @property
    def stopped(self) -> bool:
        """A call repeated an earlier one: read no more of the response."""
        return self._guard is not None and self._guard.repeat is not None

    def feed(self, delta: TokenDelta) -> list[Piece]:
        if delta.token_ids and self._first_t is None:
            self._first_t = delta.t
        self._tokens += len(delta.token_ids)
        return self.feed_text(delta.text)

    def feed_text(self, text: str) -> list[Piece]:
        """Pieces of ``text`` alone (callers that count tokens elsewhere)."""
        if not text or self.stopped:
            return []
        if self._parser is None:
            return self._text(text)
        return self._events(self._parser.feed(text))

    def finish(self) -> list[Piece]:
        return self._events(self._parser.finish()) if self._parser is not None else []

    def final_stats(self, stats: RequestStats | None, request: GenerateRequest) -> RequestStats:
        """The request's statistics: the engine's, or rebuilt when the response was stopped
        at a repeat before the engine sent them.

        Raises:
            EngineError: the stream ended without statistics and was not stopped.
        """
        if stats is not None:
            return stats
        if not self.stopped:
            raise EngineError("the engine's stream ended without statistics")
        return stats_at_cut(
            request,
            output_tokens=self._tokens,
            arrival_t=self._arrival,
            first_token_t=self._first_t,
            t=now(),
        )

    def _text(self, text: str) -> list[Piece]:
        out = self._ws.feed(text)
        if not out:
            return []
        self.content.append(out)
        return [out]

    def _events(self, events: list[ParseEvent]) -> list[Piece]:
        pieces: list[Piece] = []
        for ev in events:
            if isinstance(ev, TextPiece):
                pieces.extend(self._text(ev.text))
            elif isinstance(ev, ParsedCall):
                call = CallOut(len(self.calls), _call_id(), ev.name, ev.arguments_json)
                self.calls.append(call)
                pieces.append(call)
            elif ev.unfinished:
                pieces.extend(self._partial(ev))
            else:
                # A call written wrongly (possible only where decoding is not
                # constrained): the client gets its text rather than losing it.
                pieces.extend(self._text(ev.raw))
        return pieces

    def _partial(self, ev: MalformedCall) -> list[Piece]:
        """A call the response ended inside: a call with the arguments so far, when its
        name was written; otherwise nothing (its markup is no content)."""
        if not ev.name:
            return []
        call = CallOut(len(self.calls), _call_id(), ev.name, ev.arguments_text)
        self.calls.append(call)
        return [call]

    def finish_reason(self, engine_reason: FinishReason) -> OpenAIFinish:
        """The OpenAI finish reason.

        Raises:
            APIError: the engine aborted or failed the request (503).
        """
        if engine_reason in ("abort", "error"):
            raise APIError(
                503,
                f"the engine ended the request early ({engine_reason})",
                type="server_error",
                code="engine_" + engine_reason,
            )
        if engine_reason == "length":
            return "length"
        return "tool_calls" if self.calls else "stop"


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"
