"""Llama 3 JSON tool calls: the response is ``{"name": ..., "parameters": {...}}``.

Llama 3.x writes calls as bare JSON objects at the start of its answer (optionally after
``<|python_tag|>``), several separated by ``;`` or newlines. A response that starts with
anything else is plain text.
"""

from __future__ import annotations

from typing import Literal

from ._json_scan import JsonEndScanner
from ._types import MalformedCall, ParseEvent, TextPiece, call_from_json

PYTHON_TAG = "<|python_tag|>"

_State = Literal["start", "json", "between", "text"]


class Llama3JsonParser:
    """Incremental parser for Llama 3 JSON calls (``parameters`` or ``arguments``)."""

    def __init__(self) -> None:
        self._state: _State = "start"
        self._buf = ""
        self._scan = JsonEndScanner()
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
        if self._state == "json":
            out.append(
                MalformedCall(self._index, self._scan.value_text, "tool call was not finished")
            )
            self._index += 1
        elif self._buf.strip() or (self._state == "text" and self._buf):
            out.append(TextPiece(self._buf))
        self._buf = ""
        return out

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
            self._open()
        else:
            self._state = "text"

    def _open(self) -> None:
        self._state, self._scan = "json", JsonEndScanner()

    def _step_json(self, out: list[ParseEvent]) -> None:
        used = self._scan.feed(self._buf)
        self._buf = self._buf[used:]
        if self._scan.done:
            out.append(
                call_from_json(
                    self._index, self._scan.value_text, args_keys=("parameters", "arguments")
                )
            )
            self._index += 1
            self._state = "between"

    def _step_between(self, out: list[ParseEvent]) -> None:
        stripped = self._buf.lstrip().lstrip(";").lstrip()
        if not stripped:
            self._buf = stripped
            return
        if stripped.startswith("{"):
            self._buf = stripped
            self._open()
        else:
            self._state = "text"

    def _step_text(self, out: list[ParseEvent]) -> None:
        out.append(TextPiece(self._buf))
        self._buf = ""
