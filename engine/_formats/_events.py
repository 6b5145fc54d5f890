"""What an incremental tool-call parser emits, and the checks every format shares.

Events are tagged (``kind``): model text outside calls, a complete call, or a call the
model opened but did not write correctly. A call cut off by the end of the response is a
``MalformedCall`` with ``unfinished`` set and the name and argument text read so far, so a
consumer can report it as a partial call rather than as markup.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .._messages import is_tool_name


@dataclass(frozen=True, slots=True)
class TextPiece:
    """Model text outside tool calls (before, between or after them)."""

    text: str
    kind: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ParsedCall:
    """A complete, well-formed tool call. ``index`` counts calls (malformed ones too).

    Invariant: ``name`` matches ``TOOL_NAME_PATTERN`` (other names are malformed calls).
    """

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
    """A call the model opened but wrote wrongly; it becomes an error message to the model.

    Attributes:
        raw: the call's text as the parser read it, its opening marker included.
        error: what is wrong, in words the model can act on.
        name: the tool's name, when it could be read.
        arguments_text: the arguments' JSON text as far as it was written.
        unfinished: the response ended inside the call (e.g. at ``max_tokens``).
    """

    index: int
    raw: str
    error: str
    name: str | None = None
    arguments_text: str = ""
    unfinished: bool = False
    kind: Literal["malformed"] = "malformed"


ParseEvent = TextPiece | ParsedCall | MalformedCall


class ToolCallParser(Protocol):
    """Incremental parser: feed text deltas, get events as soon as they are certain.

    Invariants every format keeps: feeding a stream in any split yields the same
    events; each call is emitted by the ``feed`` that delivers the end of its JSON;
    a call still open at ``finish`` is an unfinished ``MalformedCall``;
    ``feed``/``finish`` never raise on any input.
    """

    def feed(self, text: str) -> list[ParseEvent]: ...

    def finish(self) -> list[ParseEvent]: ...


def call_from_json(
    index: int,
    json_text: str,
    raw: str,
    *,
    args_keys: tuple[str, ...] = ("arguments",),
    name: str | None = None,
) -> ParsedCall | MalformedCall:
    """Check the JSON of one call: an object with a tool name and object arguments.

    Arguments given as a JSON string holding an object are accepted (some models do that).
    With ``name``, ``json_text`` is the arguments alone (the format wrote the name apart).
    """
    try:
        obj = json.loads(json_text)
    except (json.JSONDecodeError, RecursionError) as exc:
        name_read, args_read = read_call_head(json_text)
        error = f"tool call is not valid JSON: {exc}"
        return MalformedCall(index, raw, error, name_read, args_read or "")
    if name is not None:
        obj = {"name": name, args_keys[0]: obj}
    if not isinstance(obj, dict):
        return MalformedCall(index, raw, "tool call must be a JSON object")
    call_name = obj.get("name")
    if not isinstance(call_name, str) or not call_name:
        return MalformedCall(index, raw, 'tool call needs a string "name"')
    if not is_tool_name(call_name):
        return MalformedCall(
            index, raw, f"tool call name {call_name[:80]!r} is not a valid tool name"
        )
    args: Any = {}
    for key in args_keys:
        if key in obj:
            args = obj[key]
            break
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except (json.JSONDecodeError, RecursionError) as exc:
            return MalformedCall(
                index, raw, f"tool call arguments are not valid JSON: {exc}", call_name
            )
    if not isinstance(args, dict):
        return MalformedCall(
            index, raw, f'tool call "{call_name}" arguments must be a JSON object', call_name
        )
    return ParsedCall(index, call_name, args, json_text)


_CALL_HEAD = re.compile(
    r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*(?:,\s*"(?:arguments|parameters)"\s*:\s*(.*))?',
    re.DOTALL,
)


def read_call_head(json_text: str) -> tuple[str | None, str | None]:
    """The name and the arguments' text of a call object's (possibly cut) JSON text.

    The arguments' text is None when the text does not reach an arguments key.
    """
    m = _CALL_HEAD.match(json_text)
    if m is None:
        return None, None
    try:
        name = json.loads(f'"{m.group(1)}"')
    except json.JSONDecodeError:
        return None, None
    args = None if m.group(2) is None else m.group(2).rstrip()
    return (name if isinstance(name, str) else None), args


def unfinished_call(index: int, raw: str, json_text: str, name: str | None = None) -> MalformedCall:
    """The event for a call the response ended inside."""
    args: str | None
    if name is None:
        name, args = read_call_head(json_text)
    else:
        args = json_text.strip()
    error = "tool call was not finished"
    return MalformedCall(index, raw, error, name, args or "", unfinished=True)


Verdict = Literal["yes", "no", "maybe"]


def call_object_start(text: str) -> Verdict:
    """Whether ``text``, which starts with ``{``, opens a call object (``{"name"``), or
    cannot tell yet."""
    rest = text[1:].lstrip()
    if rest.startswith('"name"'):
        return "yes"
    return "maybe" if '"name"'.startswith(rest) else "no"


def split_partial(text: str, tag: str) -> tuple[str, str]:
    """Split off the longest suffix of ``text`` that could be the start of ``tag``."""
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:k]):
            return text[:-k], text[-k:]
    return text, ""
