"""Chat messages, the one tool-name pattern, and rendered text as markers plus content.

A rendered conversation is a sequence of pieces: ``Marker``s (the template's own control
strings, such as ``<|im_start|>``) and plain strings (everything else: roles, template
prose, and every byte that came from a user, a tool or the model). Only markers may
become special tokens; plain strings are always tokenized as text, so no content can
forge a turn of the conversation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]

TOOL_NAME_PATTERN = r"[A-Za-z0-9_.-]{1,64}"
"""What a tool name may be, everywhere: the ``Tool`` type, ``@tool``, MCP mounts, the REST
server's tool definitions and the calls echoed in assistant messages. OpenAI's alphabet
plus ``.`` (MCP mounts namespace with it); nothing that needs escaping inside JSON text or
could spell a chat marker."""

_TOOL_NAME = re.compile(TOOL_NAME_PATTERN)
_NOT_IN_TOOL_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def check_tool_name(name: object, field: str) -> str:
    """Return ``name`` if it is a valid tool name.

    Raises:
        ValueError: naming ``field`` when ``name`` is not 1-64 letters, digits, ``_.-``.
    """
    if not isinstance(name, str) or _TOOL_NAME.fullmatch(name) is None:
        raise ValueError(
            f"{field}: {name!r} is not a valid tool name (1-64 letters, digits, '_', '.' or '-')"
        )
    return name


def is_tool_name(name: str) -> bool:
    """Whether ``name`` matches ``TOOL_NAME_PATTERN``."""
    return _TOOL_NAME.fullmatch(name) is not None


def to_tool_name(text: str) -> str:
    """The nearest valid tool name: other characters become ``_``, cut to 64 characters."""
    return (_NOT_IN_TOOL_NAME.sub("_", text) or "_")[:64]


@dataclass(frozen=True, slots=True)
class Marker:
    """A control string of the template. It becomes one special token when the model's
    vocabulary has it as one, and is plain text otherwise."""

    text: str


Piece = str | Marker
Pieces = tuple[Piece, ...]


def pieces_text(pieces: Iterable[Piece]) -> str:
    """The text the pieces spell (what a Jinja template would have produced)."""
    return "".join(p.text if isinstance(p, Marker) else p for p in pieces)


@dataclass(frozen=True, slots=True)
class ToolCallPart:
    """A tool call inside an assistant message. ``arguments`` is JSON text of an object.

    Raises:
        ValueError: ``name`` is not a valid tool name, or ``arguments`` is not JSON text
            of an object (both are echoed into the prompt verbatim).
    """

    id: str
    name: str
    arguments: str

    def __post_init__(self) -> None:
        check_tool_name(self.name, "ToolCallPart.name")
        try:
            value = json.loads(self.arguments)
        except (json.JSONDecodeError, RecursionError):
            value = None
        if not isinstance(value, dict):
            raise ValueError(
                f"ToolCallPart.arguments of {self.name!r} must be JSON text of an object, "
                f"got {self.arguments[:80]!r}"
            )


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat message. ``tool_calls`` only on assistant messages, ``tool_call_id`` on tool."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCallPart, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ("system", "user", "assistant", "tool"):
            raise ValueError(
                f"ChatMessage.role must be system/user/assistant/tool, got {self.role!r}"
            )
        if self.tool_calls and self.role != "assistant":
            raise ValueError("ChatMessage.tool_calls is only allowed on assistant messages")


def dumps(value: Any) -> str:
    """JSON the way the template's ``tojson`` writes it (non-ASCII kept, default separators)."""
    return json.dumps(value, ensure_ascii=False)
