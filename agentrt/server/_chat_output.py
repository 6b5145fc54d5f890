"""From engine deltas to what a chat client sees: content pieces and whole tool calls.

The streamed and the non-streamed endpoint share this one assembler, so both report
the same content and the same calls for the same tokens. Calls come from the incremental
parser of the server's tool format, which emits each call exactly once, in the ``feed``
that delivers the end of its JSON (however the text was split into deltas).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from agentrt.engine import FinishReason, ParsedCall, ParseEvent, TextPiece, ToolFormat

from ._errors import APIError

OpenAIFinish = Literal["stop", "length", "tool_calls"]


@dataclass(frozen=True, slots=True)
class CallOut:
    """A complete tool call as the client receives it (``index`` counts calls sent)."""

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
    """

    def __init__(self, calls_format: ToolFormat | None) -> None:
        self._parser = calls_format.parser() if calls_format is not None else None
        self._ws = _Whitespace()
        self.calls: list[CallOut] = []
        self.content: list[str] = []

    def feed(self, text: str) -> list[Piece]:
        if self._parser is None:
            return self._text(text)
        return self._events(self._parser.feed(text))

    def finish(self) -> list[Piece]:
        return self._events(self._parser.finish()) if self._parser is not None else []

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
                call = CallOut(
                    len(self.calls), f"call_{uuid.uuid4().hex[:24]}", ev.name, ev.arguments_json
                )
                self.calls.append(call)
                pieces.append(call)
            else:
                # Only a call cut off by max_tokens gets here (decoding is constrained):
                # the client gets its text rather than losing it.
                pieces.extend(self._text(ev.raw))
        return pieces

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
