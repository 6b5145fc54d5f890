"""Hermes / Qwen tool calls: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``."""

from __future__ import annotations

from typing import Literal

from ._json_scan import JsonEndScanner
from ._types import MalformedCall, ParseEvent, TextPiece, call_from_json, split_partial

OPEN = "<tool_call>"
CLOSE = "</tool_call>"

_State = Literal["text", "json", "skip", "after"]


class HermesParser:
    """Incremental parser for Hermes-style call blocks.

    States: ``text`` (looking for ``<tool_call>``), ``json`` (inside a call, scanning
    for the end of its JSON), ``skip`` (a malformed call: discard up to ``</tool_call>``),
    ``after`` (a call's JSON closed: expect whitespace and ``</tool_call>``).
    """

    def __init__(self) -> None:
        self._state: _State = "text"
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
                break  # waiting for more text
        return out

    def finish(self) -> list[ParseEvent]:
        out: list[ParseEvent] = []
        if self._state == "text" and self._buf:
            out.append(TextPiece(self._buf))
        elif self._state in ("json", "skip"):
            raw = "".join(self._scan.text) + (self._buf if self._state == "skip" else "")
            out.append(MalformedCall(self._index, raw, "tool call was not finished"))
            self._index += 1
        self._buf = ""
        self._state = "text"
        return out

    def _step_text(self, out: list[ParseEvent]) -> None:
        at = self._buf.find(OPEN)
        if at >= 0:
            if at:
                out.append(TextPiece(self._buf[:at]))
            self._buf = self._buf[at + len(OPEN) :]
            self._state, self._scan = "json", JsonEndScanner()
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
            out.append(call_from_json(self._index, self._scan.value_text))
            self._index += 1
            self._state = "after"
        elif close_at >= 0:
            raw = self._scan.value_text
            self._buf = self._buf[len(CLOSE) :]
            out.append(MalformedCall(self._index, raw, "tool call JSON is incomplete"))
            self._index += 1
            self._state = "text"

    def _step_skip(self, out: list[ParseEvent]) -> None:
        at = self._buf.find(CLOSE)
        if at < 0:
            # Keep a possible partial closing tag; the rest belongs to the broken call.
            dropped, self._buf = split_partial(self._buf, CLOSE)
            self._scan.text.append(dropped)
            return
        raw = ("".join(self._scan.text) + self._buf[:at]).strip()
        self._buf = self._buf[at + len(CLOSE) :]
        out.append(MalformedCall(self._index, raw, "tool call must hold a JSON object"))
        self._index += 1
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
