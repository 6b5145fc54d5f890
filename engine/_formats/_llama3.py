"""Llama 3.x JSON calls: the response is ``{"name": ..., "parameters": {...}}``.

Llama 3.1-3.3 write calls as bare JSON objects that make up the whole answer (optionally
after ``<|python_tag|>``), several separated by ``;``. A response that starts with
anything else is plain text. Results come back in an ``ipython`` turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from .._messages import ChatMessage, Pieces, ToolCallPart, dumps
from .._types import ToolCallConstraint, ToolFormatName, ToolSchema
from ._base import ToolFormat, call_json, call_tags, calls_only, tool_json
from ._events import ParseEvent, TextPiece, ToolCallParser, call_from_json, unfinished_call
from ._machine import StepParser
from ._scan import JsonEndScanner

PYTHON_TAG = "<|python_tag|>"
_ARGS_KEYS = ("parameters", "arguments")

_TOOLS_INTRO = (
    "\n\nYou can call the functions listed below. To call one, answer with nothing but a "
    'JSON object of the form {"name": <function-name>, "parameters": <arguments-object>}; '
    'separate several calls with "; ".\n'
)


class Llama3JsonFormat(ToolFormat):
    """Calls as bare JSON objects forming the whole answer, joined by ``"; "``."""

    name: ClassVar[ToolFormatName] = "llama3_json"
    models = "Llama 3.1, 3.2, 3.3 (JSON tool calls)"

    def tools_block(self, system: str, tools: Sequence[ToolSchema]) -> Pieces:
        listed = "".join("\n" + dumps(tool_json(t)) for t in tools)
        return (system, _TOOLS_INTRO + listed)

    def call_pieces(self, calls: Sequence[ToolCallPart]) -> Pieces:
        return ("; ".join(call_json(c.name, c.arguments, "parameters") for c in calls),)

    def result_turn(self, msg: ChatMessage) -> tuple[str, Pieces]:
        return "ipython", (msg.content,)

    def structural_tag(self, constraint: ToolCallConstraint) -> dict[str, Any]:
        tags = call_tags(constraint.tools, "", "", "parameters")
        calls = calls_only(tags, separator="; ", parallel=constraint.parallel)
        if constraint.required:
            return {"type": "structural_tag", "format": calls}
        # The parser reads calls only at the start of the answer, so the grammar allows
        # either calls alone or text that never opens one.
        text = {"type": "any_text", "excludes": ['{"name"']}
        return {"type": "structural_tag", "format": {"type": "or", "elements": [calls, text]}}

    def parser(self) -> ToolCallParser:
        return Llama3JsonParser()


class Llama3JsonParser(StepParser):
    """Incremental parser for Llama 3 JSON calls (``parameters`` or ``arguments``).

    States: ``start`` (before the first non-blank character), ``json`` (a call object),
    ``between`` (after a call: ``;``/blanks, then another call or text), ``text``.
    """

    _initial = "start"

    def _finish_state(self, out: list[ParseEvent]) -> None:
        if self._state == "json":
            self._emit(out, unfinished_call(self._index, self._scan.raw, self._scan.raw))
        elif self._state == "between":
            pass  # only separators after the last call: not text
        elif self._buf.strip() or (self._state == "text" and self._buf):
            out.append(TextPiece(self._buf))

    def _step_start(self, out: list[ParseEvent]) -> None:
        stripped = self._buf.lstrip()
        if not stripped:
            return
        if stripped.startswith(PYTHON_TAG):
            self._buf = stripped[len(PYTHON_TAG) :]
            self._state = "between"
        elif PYTHON_TAG.startswith(stripped):
            return
        elif stripped.startswith("{"):
            self._buf = stripped
            self._state, self._scan = "json", JsonEndScanner()
        else:
            self._state = "text"

    def _step_json(self, out: list[ParseEvent]) -> None:
        used = self._scan.feed(self._buf)
        self._buf = self._buf[used:]
        if self._scan.done:
            text, raw = self._scan.value_text, self._scan.raw
            self._emit(out, call_from_json(self._index, text, raw, args_keys=_ARGS_KEYS))
            self._state = "between"

    def _step_between(self, out: list[ParseEvent]) -> None:
        stripped = self._buf.lstrip().lstrip(";").lstrip()
        if not stripped:
            # Keep the separators: if text follows rather than a call, they belong to it
            # (however the stream was split).
            return
        if stripped.startswith("{"):
            self._buf = stripped
            self._state, self._scan = "json", JsonEndScanner()
        else:
            self._state = "text"

    def _step_text(self, out: list[ParseEvent]) -> None:
        out.append(TextPiece(self._buf))
        self._buf = ""


LLAMA3_JSON = Llama3JsonFormat()
