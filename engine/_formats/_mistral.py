"""Mistral tool calls: ``[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]``.

Also the newer form ``[TOOL_CALLS]name[ARGS]{...}``. Each call is emitted as soon as its
own object closes, before the array ends. ``[TOOL_CALLS]`` is a special token in Mistral
vocabularies, which vLLM leaves out of the streamed text by default: an array of calls
at the very start of the answer is read as calls even without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from .._messages import ChatMessage, Marker, Pieces, ToolCallPart, dumps
from .._types import ToolCallConstraint, ToolFormatName, ToolSchema
from ._base import ToolFormat, call_json, call_tags, calls_in_text, calls_only, tool_json
from ._events import (
    MalformedCall,
    ParseEvent,
    TextPiece,
    ToolCallParser,
    call_from_json,
    call_object_start,
    split_partial,
    unfinished_call,
)
from ._machine import StepParser
from ._scan import JsonEndScanner

TOOL_CALLS = "[TOOL_CALLS]"
ARGS = "[ARGS]"


class MistralFormat(ToolFormat):
    """Calls as one JSON array after ``[TOOL_CALLS]``; tools in ``[AVAILABLE_TOOLS]``,
    results in ``[TOOL_RESULTS]``."""

    name: ClassVar[ToolFormatName] = "mistral"
    models = "Mistral 7B v0.3, Mixtral 8x22B, Mistral Nemo/Small (JSON-array tool calls)"

    def tools_block(self, system: str, tools: Sequence[ToolSchema]) -> Pieces:
        listed = dumps([tool_json(t) for t in tools])
        return (
            system,
            "\n\n",
            Marker("[AVAILABLE_TOOLS]"),
            listed,
            Marker("[/AVAILABLE_TOOLS]"),
        )

    def call_pieces(self, calls: Sequence[ToolCallPart]) -> Pieces:
        body = ", ".join(call_json(c.name, c.arguments) for c in calls)
        return (Marker(TOOL_CALLS), f"[{body}]")

    def result_turn(self, msg: ChatMessage) -> tuple[str, Pieces]:
        result: dict[str, Any] = {"content": msg.content}
        if msg.tool_call_id is not None:
            result["call_id"] = msg.tool_call_id
        return "tool", (Marker("[TOOL_RESULTS]"), dumps(result), Marker("[/TOOL_RESULTS]"))

    def structural_tag(self, constraint: ToolCallConstraint) -> dict[str, Any]:
        tags = call_tags(constraint.tools, "", "")
        block = {
            "type": "tag",
            "begin": f"{TOOL_CALLS}[",
            "content": calls_only(tags, separator=", ", parallel=constraint.parallel),
            "end": "]",
        }
        if constraint.required:
            return {"type": "structural_tag", "format": block}
        # One block at most: it holds every call of the answer.
        fmt = calls_in_text([block], triggers=[TOOL_CALLS], parallel=False)
        return {"type": "structural_tag", "format": fmt}

    def parser(self) -> ToolCallParser:
        return MistralParser()


class MistralParser(StepParser):
    """Incremental parser for both Mistral call layouts.

    States: ``start`` (only blanks so far: a bare array may open), ``text``, ``open``
    (after ``[TOOL_CALLS]``), ``array``/``object`` (the array form), ``name``/``args``
    (the ``name[ARGS]{...}`` form).
    """

    _initial = "start"

    def __init__(self) -> None:
        super().__init__()
        self._name = ""

    def _finish_state(self, out: list[ParseEvent]) -> None:
        if self._state in ("text", "start") and self._buf:
            out.append(TextPiece(self._buf))
        elif self._state == "object":
            raw = TOOL_CALLS + self._scan.raw + self._buf
            self._emit(out, unfinished_call(self._index, raw, self._scan.raw))
        elif self._state in ("name", "args"):
            raw = TOOL_CALLS + self._name + ARGS + self._scan.raw + self._buf
            name = self._name.strip() or None
            self._emit(out, unfinished_call(self._index, raw, self._scan.raw, name))

    def _step_start(self, out: list[ParseEvent]) -> None:
        stripped = self._buf.lstrip()
        if not stripped:
            return
        rest = stripped[1:].lstrip() if stripped.startswith("[") else "-"
        if not rest:
            return  # "[" alone: a bare array or the marker may follow
        verdict = call_object_start(rest) if rest.startswith("{") else "no"
        if verdict == "yes":
            self._buf, self._state = stripped[1:], "array"
        elif verdict == "no":
            self._state = "text"

    def _step_text(self, out: list[ParseEvent]) -> None:
        at = self._buf.find(TOOL_CALLS)
        if at >= 0:
            if at:
                out.append(TextPiece(self._buf[:at]))
            self._buf = self._buf[at + len(TOOL_CALLS) :]
            self._state = "open"
            return
        emit, self._buf = split_partial(self._buf, TOOL_CALLS)
        if emit:
            out.append(TextPiece(emit))

    def _step_open(self, out: list[ParseEvent]) -> None:
        stripped = self._buf.lstrip()
        if not stripped:
            self._buf = ""
        elif stripped.startswith("["):
            self._buf, self._state = stripped[1:], "array"
        else:
            self._buf, self._state, self._name = stripped, "name", ""

    def _step_array(self, out: list[ParseEvent]) -> None:
        stripped = self._buf.lstrip().lstrip(",").lstrip()
        if not stripped:
            self._buf = ""
        elif stripped.startswith("]"):
            self._buf, self._state = stripped[1:], "text"
        elif stripped.startswith("{"):
            self._buf, self._state, self._scan = stripped, "object", JsonEndScanner()
        else:
            # Not a call: say so, and give what follows back as the model's text.
            error = "expected a JSON object in [TOOL_CALLS]"
            self._emit(out, MalformedCall(self._index, TOOL_CALLS, error))
            self._buf, self._state = stripped, "text"

    def _step_object(self, out: list[ParseEvent]) -> None:
        used = self._scan.feed(self._buf)
        self._buf = self._buf[used:]
        if self._scan.done:
            raw = TOOL_CALLS + self._scan.raw
            self._emit(out, call_from_json(self._index, self._scan.value_text, raw))
            self._state = "array"

    def _step_name(self, out: list[ParseEvent]) -> None:
        at = self._buf.find(ARGS)
        if at < 0:
            keep, self._buf = split_partial(self._buf, ARGS)
            self._name += keep
            return
        self._name += self._buf[:at]
        self._buf, self._state, self._scan = self._buf[at + len(ARGS) :], "args", JsonEndScanner()

    def _step_args(self, out: list[ParseEvent]) -> None:
        used = self._scan.feed(self._buf)
        self._buf = self._buf[used:]
        if self._scan.blocked:
            raw = TOOL_CALLS + self._name + ARGS + self._scan.raw
            error = "[ARGS] must be followed by a JSON object"
            self._emit(out, MalformedCall(self._index, raw, error, self._name.strip() or None))
            self._state = "text"
        elif self._scan.done:
            raw = TOOL_CALLS + self._name + ARGS + self._scan.raw
            name = self._name.strip()
            self._emit(out, call_from_json(self._index, self._scan.value_text, raw, name=name))
            self._state = "text"


MISTRAL = MistralFormat()
