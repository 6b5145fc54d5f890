"""What an incremental tool-call parser emits, and the interface every format implements."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class TextPiece:
    """Model text outside tool calls (before, between or after them)."""

    text: str
    kind: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ParsedCall:
    """A complete, well-formed tool call. ``index`` counts calls (malformed ones too)."""

    index: int
    name: str
    arguments: dict[str, Any]
    raw: str
    kind: Literal["call"] = "call"

    @property
    def arguments_json(self) -> str:
        """Canonical JSON text of the arguments (as the chat template renders them)."""
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class MalformedCall:
    """A call the model opened but wrote wrongly; it becomes an error message to the model."""

    index: int
    raw: str
    error: str
    kind: Literal["malformed"] = "malformed"


ParseEvent = TextPiece | ParsedCall | MalformedCall


class ToolCallParser(Protocol):
    """Incremental parser: feed text deltas, get events as soon as they are certain.

    Invariants every format keeps: feeding a stream in any split yields the same
    calls; each call is emitted by the ``feed`` that delivers the end of its JSON;
    ``feed``/``finish`` never raise on any input.
    """

    def feed(self, text: str) -> list[ParseEvent]: ...

    def finish(self) -> list[ParseEvent]: ...


def call_from_json(
    index: int, raw: str, *, args_keys: tuple[str, ...] = ("arguments",), name: str | None = None
) -> ParsedCall | MalformedCall:
    """Validate the JSON of one call: an object with a string name and object arguments.

    Arguments given as a JSON string holding an object are accepted (some models do that).
    """
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        return MalformedCall(index, raw, f"tool call is not valid JSON: {exc}")
    if name is not None:
        obj = {"name": name, args_keys[0]: obj}
    if not isinstance(obj, dict):
        return MalformedCall(index, raw, "tool call must be a JSON object")
    call_name = obj.get("name")
    if not isinstance(call_name, str) or not call_name:
        return MalformedCall(index, raw, 'tool call needs a string "name"')
    args: Any = {}
    for key in args_keys:
        if key in obj:
            args = obj[key]
            break
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as exc:
            return MalformedCall(index, raw, f"tool call arguments are not valid JSON: {exc}")
    if not isinstance(args, dict):
        return MalformedCall(index, raw, f'tool call "{call_name}" arguments must be a JSON object')
    return ParsedCall(index, call_name, args, raw)


def split_partial(text: str, tag: str) -> tuple[str, str]:
    """Split off the longest suffix of ``text`` that could be the start of ``tag``."""
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:k]):
            return text[:-k], text[-k:]
    return text, ""
