"""Hermes / Qwen tool calls: ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``.

The format of Qwen2.5, Qwen3 and Hermes models, and of agentrt's shipped chat template
(``templates/hermes_tools.jinja``, which renders exactly what ``HermesFormat`` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from .._messages import ChatMessage, Marker, Piece, Pieces, ToolCallPart, dumps
from .._types import ToolCallConstraint, ToolFormatName, ToolSchema
from ._base import ToolFormat, call_json, call_tags, calls_grammar, tool_json
from ._events import (
    MalformedCall,
    ParseEvent,
    TextPiece,
    ToolCallParser,
    call_from_json,
    split_partial,
    unfinished_call,
)
from ._machine import StepParser
from ._scan import JsonEndScanner

OPEN = "<tool_call>"
CLOSE = "</tool_call>"

_TOOLS_INTRO = (
    "\n\n# Tools\n\nThese functions are available to you. "
    "Their signatures are listed in <tools></tools> tags:\n<tools>"
)
_TOOLS_OUTRO = (
    "\n</tools>\n\nTo call a function, answer with one block per call, each holding a JSON "
    "object with the function name and its arguments:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)


class HermesFormat(ToolFormat):
    """Calls in ``<tool_call>`` blocks, one JSON object each, blocks separated by newlines;
    results in ``<tool_response>`` blocks of a user turn."""

    name: ClassVar[ToolFormatName] = "hermes"
    models = "Qwen2.5, Qwen3, Hermes (and agentrt's shipped template)"

    def tools_block(self, system: str, tools: Sequence[ToolSchema]) -> Pieces:
        listed = "".join("\n" + dumps(tool_json(t)) for t in tools)
        return (system, _TOOLS_INTRO + listed + _TOOLS_OUTRO)

    def call_pieces(self, calls: Sequence[ToolCallPart]) -> Pieces:
        out: list[Piece] = []
        for i, c in enumerate(calls):
            if i:
                out.append("\n")
            out += [Marker(OPEN), "\n" + call_json(c.name, c.arguments) + "\n", Marker(CLOSE)]
        return tuple(out)

    def result_turn(self, msg: ChatMessage) -> tuple[str, Pieces]:
        return "user", ("<tool_response>\n", msg.content, "\n</tool_response>")

    def structural_tag(self, constraint: ToolCallConstraint) -> dict[str, Any]:
        tags = call_tags(constraint.tools, f"{OPEN}\n", f"\n{CLOSE}")
        return calls_grammar(constraint, tags, triggers=[OPEN], separator="\n")

    def parser(self) -> ToolCallParser:
        return HermesParser()


class HermesParser(StepParser):
    """Incremental parser for Hermes-style call blocks.

    States: ``text`` (looking for ``<tool_call>``), ``json`` (inside a call, scanning
    for the end of its JSON), ``skip`` (a malformed call: discard up to ``</tool_call>``),
    ``after`` (a call's JSON closed: expect whitespace and ``</tool_call>``).
    """

    def _finish_state(self, out: list[ParseEvent]) -> None:
        if self._state == "text" and self._buf:
            out.append(TextPiece(self._buf))
        elif self._state in ("json", "skip"):
            # The buffer holds what might have begun the closing tag: it is the call's too.
            written = self._scan.raw + self._buf
            self._emit(out, unfinished_call(self._index, OPEN + written, written))

    def _open_tagged(self, at: int, out: list[ParseEvent]) -> None:
        """Text up to ``at`` is the model's; a ``<tool_call>`` starts there."""
        if at:
            out.append(TextPiece(self._buf[:at]))
        self._buf = self._buf[at + len(OPEN) :]
        self._state, self._scan = "json", JsonEndScanner()

    def _step_text(self, out: list[ParseEvent]) -> None:
        at = self._buf.find(OPEN)
        if at >= 0:
            self._open_tagged(at, out)
            return
        emit, self._buf = split_partial(self._buf, OPEN)
        if emit:
            out.append(TextPiece(emit))

    def _step_json(self, out: list[ParseEvent]) -> None:
        chunk = self._buf
        close_at = chunk.find(CLOSE)
        if close_at >= 0:
            safe = chunk[:close_at]
        else:
            # Hold back a possible partial closing tag: a JSON value never ends in "<".
            safe, _ = split_partial(chunk, CLOSE)
        used = self._scan.feed(safe)
        self._buf = chunk[used:]
        if self._scan.blocked:
            self._state = "skip"
        elif self._scan.done:
            raw = OPEN + self._scan.raw
            self._emit(out, call_from_json(self._index, self._scan.value_text, raw))
            self._state = "after"
        elif close_at >= 0:
            raw = OPEN + self._scan.raw + CLOSE
            self._buf = self._buf[len(CLOSE) :]
            self._emit(out, MalformedCall(self._index, raw, "tool call JSON is incomplete"))
            self._state = "text"

    def _step_skip(self, out: list[ParseEvent]) -> None:
        at = self._buf.find(CLOSE)
        if at < 0:
            # Keep a possible partial closing tag; the rest belongs to the broken call.
            dropped, self._buf = split_partial(self._buf, CLOSE)
            self._scan.text.append(dropped)
            return
        raw = OPEN + self._scan.raw + self._buf[:at] + CLOSE
        self._buf = self._buf[at + len(CLOSE) :]
        self._emit(out, MalformedCall(self._index, raw, "tool call must hold a JSON object"))
        self._state = "text"

    def _step_after(self, out: list[ParseEvent]) -> None:
        stripped = self._buf.lstrip()
        if stripped.startswith(CLOSE):
            self._buf = stripped[len(CLOSE) :]
            self._state = "text"
        elif CLOSE.startswith(stripped):
            return  # part of the closing tag so far
        else:
            # The closing tag is missing: tolerate it and treat what follows as text.
            self._state = "text"


HERMES = HermesFormat()
