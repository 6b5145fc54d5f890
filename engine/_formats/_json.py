"""Bare or fenced JSON calls: ``{"name": ..., "arguments": {...}}`` with or without tags.

Small Qwen2.5 instruct models are taught the Hermes template but often answer with the
call's JSON alone, or inside a Markdown code fence, instead of a ``<tool_call>`` block.
This format renders and constrains like Hermes (so the model sees its own template) and
its parser reads all three forms. A bare object counts as a call only if it starts with
``"name"`` and has ``"arguments"`` (or ``"parameters"``): other JSON stays text.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from .._types import ToolCallConstraint, ToolFormatName
from ._base import call_tags, calls_grammar
from ._events import (
    ParsedCall,
    ParseEvent,
    TextPiece,
    Verdict,
    call_from_json,
    call_object_start,
    read_call_head,
    split_partial,
    unfinished_call,
)
from ._hermes import CLOSE, OPEN, HermesFormat, HermesParser
from ._scan import JsonEndScanner

FENCE = "```"
_BARE_TRIGGER = '{"name": '
# A fence opener: ``` + an optional language word + end of line + indentation.
_FENCE_HEAD = re.compile(r"```[\w+-]{0,20}[ \t]*\r?\n\s*")
_FENCE_HEAD_SO_FAR = re.compile(r"```[\w+-]{0,20}[ \t]*\r?\Z")


class JsonFormat(HermesFormat):
    """Hermes rendering; the grammar also lets a bare call start free text (auto mode)."""

    name: ClassVar[ToolFormatName] = "json"
    models = "small Qwen2.5 instruct models (Hermes template, calls often bare or fenced)"

    def structural_tag(self, constraint: ToolCallConstraint) -> dict[str, Any]:
        if constraint.required:
            return super().structural_tag(constraint)
        tags = call_tags(constraint.tools, f"{OPEN}\n", f"\n{CLOSE}")
        tags += call_tags(constraint.tools, "", "")
        return calls_grammar(constraint, tags, triggers=[OPEN, _BARE_TRIGGER], separator="\n")

    def parser(self) -> JsonCallParser:
        return JsonCallParser()


def _fence_start(text: str) -> tuple[Verdict, int]:
    """Whether ``text`` (starting with a fence) opens a fenced call; the fence's length."""
    m = _FENCE_HEAD.match(text)
    if m is None:
        return ("maybe" if _FENCE_HEAD_SO_FAR.match(text) else "no"), 0
    rest = text[m.end() :]
    if not rest:
        return "maybe", 0
    if not rest.startswith("{"):
        return "no", 0
    return call_object_start(rest), m.end()


class JsonCallParser(HermesParser):
    """Hermes blocks, plus bare and fenced call objects anywhere in the text.

    Extra states: ``bare`` (scanning a candidate object; it becomes a call if it is one,
    text otherwise) and ``fence_end`` (a fenced call closed: drop the closing fence).
    """

    def __init__(self) -> None:
        super().__init__()
        self._held = ""  # the candidate's text so far, fence included
        self._fenced = False

    def _step_text(self, out: list[ParseEvent]) -> None:
        buf = self._buf
        found = [i for i in (buf.find(OPEN), buf.find("{"), buf.find(FENCE)) if i >= 0]
        if not found:
            # Hold back what could begin "<tool_call>" or a fence.
            _, tag_part = split_partial(buf, OPEN)
            _, fence_part = split_partial(buf, FENCE)
            self._text(out, len(buf) - max(len(tag_part), len(fence_part)))
            return
        at = min(found)
        if buf.startswith(OPEN, at):
            self._open_tagged(at, out)
            return
        fenced = buf.startswith(FENCE, at)
        verdict, width = _fence_start(buf[at:]) if fenced else (call_object_start(buf[at:]), 0)
        if verdict == "maybe":
            self._text(out, at)
        elif verdict == "no":
            self._text(out, at + (len(FENCE) if fenced else 1))
        else:
            self._text(out, at)
            self._held, self._buf = self._buf[:width], self._buf[width:]
            self._fenced = fenced
            self._state, self._scan = "bare", JsonEndScanner()

    def _text(self, out: list[ParseEvent], n: int) -> None:
        """The first ``n`` characters of the buffer are the model's text."""
        if n:
            out.append(TextPiece(self._buf[:n]))
            self._buf = self._buf[n:]

    def _step_bare(self, out: list[ParseEvent]) -> None:
        used = self._scan.feed(self._buf)
        self._buf = self._buf[used:]
        if not self._scan.done:
            return
        raw = self._held + self._scan.raw
        event = call_from_json(
            self._index, self._scan.value_text, raw, args_keys=("arguments", "parameters")
        )
        if isinstance(event, ParsedCall) and _has_arguments(event.raw):
            self._emit(out, event)
            self._state = "fence_end" if self._fenced else "text"
        else:
            out.append(TextPiece(raw))
            self._state = "text"

    def _step_fence_end(self, out: list[ParseEvent]) -> None:
        """After a fenced call: the closing fence (dropped), another call, or text."""
        stripped = self._buf.lstrip()
        verdict = call_object_start(stripped) if stripped.startswith("{") else "no"
        if stripped.startswith(FENCE):
            self._buf, self._state = stripped[len(FENCE) :], "text"
        elif verdict == "yes":
            self._held, self._buf = self._buf[: len(self._buf) - len(stripped)], stripped
            self._state, self._scan = "bare", JsonEndScanner()
        elif stripped and verdict == "no" and not FENCE.startswith(stripped):
            self._state = "text"  # an unclosed fence: what follows is text

    def _finish_state(self, out: list[ParseEvent]) -> None:
        if self._state != "bare":
            super()._finish_state(out)
            return
        raw = self._held + self._scan.raw + self._buf
        name, args = read_call_head(self._scan.raw)
        if name is not None and args is not None:
            self._emit(out, unfinished_call(self._index, raw, self._scan.raw))
        else:
            out.append(TextPiece(raw))


def _has_arguments(json_text: str) -> bool:
    """The object has an arguments key (``{"name": "Bob", "age": 3}`` is no call)."""
    obj = json.loads(json_text)
    return isinstance(obj, dict) and ("arguments" in obj or "parameters" in obj)


JSON = JsonFormat()
