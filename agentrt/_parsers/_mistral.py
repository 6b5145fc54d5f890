"""Mistral tool calls: ``[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]``.

Also the newer form ``[TOOL_CALLS]name[ARGS]{...}``. Each call is emitted as soon as its
own object closes, before the array ends.
"""

from __future__ import annotations

from typing import Literal

from ._json_scan import JsonEndScanner
from ._types import MalformedCall, ParseEvent, TextPiece, call_from_json, split_partial

TOOL_CALLS = "[TOOL_CALLS]"
ARGS = "[ARGS]"

_State = Literal["text", "open", "array", "object", "name", "args"]


class MistralParser:
    """Incremental parser for both Mistral call layouts."""

    def __init__(self) -> None:
        self._state: _State = "text"
        self._buf = ""
        self._scan = JsonEndScanner()
        self._name = ""
        self._index = 0

    def feed(self, text: str) -> list[ParseEvent]:
        out: list[ParseEvent] = []
        self._buf += text
        while self._buf:
            before = (self._state, len(self._buf))
            getattr(self, f"_step_{self._state}")(out)
            if (self._state, len(self._buf)) == before:
                break
        return out

    def finish(self) -> list[ParseEvent]:
        out: list[ParseEvent] = []
        if self._state == "text" and self._buf:
            out.append(TextPiece(self._buf))
        elif self._state in ("object", "args", "name"):
            raw = self._name + "".join(self._scan.text) + self._buf
            out.append(MalformedCall(self._index, raw, "tool call was not finished"))
            self._index += 1
        self._buf, self._state = "", "text"
        return out

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
            out.append(
                MalformedCall(self._index, stripped, "expected a JSON object in [TOOL_CALLS]")
            )
            self._index += 1
            self._buf, self._state = "", "text"

    def _step_object(self, out: list[ParseEvent]) -> None:
        used = self._scan.feed(self._buf)
        self._buf = self._buf[used:]
        if self._scan.done:
            out.append(call_from_json(self._index, self._scan.value_text))
            self._index += 1
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
        if self._scan.done:
            out.append(call_from_json(self._index, self._scan.value_text, name=self._name.strip()))
            self._index += 1
            self._state = "text"
