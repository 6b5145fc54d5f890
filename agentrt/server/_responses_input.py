"""Reading the ``input`` of a ``/v1/responses`` request into chat messages.

Consecutive calls (``function_call``, an echoed ``mcp_call``) join one assistant message,
and their outputs follow it in item order. Each refusal is a 400 naming the item's field
(``input[2].type``); the reader never fails in any other way (a property test holds it
to that).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import pydantic

from agentrt.engine import ChatMessage, ToolCallPart, check_tool_name

from ._errors import APIError, from_validation
from ._responses_models import (
    ContentPartIn,
    FunctionCallItemIn,
    FunctionCallOutputItemIn,
    McpCallItemIn,
    MessageItemIn,
)

M = TypeVar("M", bound=pydantic.BaseModel)
_TEXT_PARTS = ("input_text", "output_text", "text")


@dataclass(frozen=True, slots=True)
class InputMessage:
    """A message from the request's input, and the item it came from (for errors)."""

    index: int
    message: ChatMessage


def read_items(raw: str | list[dict[str, Any]]) -> list[InputMessage]:
    if isinstance(raw, str):
        return [InputMessage(0, ChatMessage("user", raw))] if raw else []
    out: list[InputMessage] = []
    outputs: list[InputMessage] = []  # tool results wait for their calls' message to close

    def flush() -> None:
        out.extend(outputs)
        outputs.clear()

    def add_call(i: int, part: ToolCallPart) -> None:
        last = out[-1].message if out and not outputs else None
        if last is not None and last.role == "assistant":
            out[-1] = InputMessage(
                i, dataclasses.replace(last, tool_calls=(*last.tool_calls, part))
            )
        else:
            flush()
            out.append(InputMessage(i, ChatMessage("assistant", "", (part,))))

    for i, item in enumerate(raw):
        kind = item.get("type", "message")
        where = f"input[{i}]"
        if kind == "message":
            m = read_model(MessageItemIn, item, where)
            flush()
            role = "system" if m.role == "developer" else m.role
            out.append(InputMessage(i, ChatMessage(role, _text(m.content, f"{where}.content"))))
        elif kind == "function_call":
            c = read_model(FunctionCallItemIn, item, where)
            add_call(i, _call_part(c.call_id, c.name, c.arguments, where))
        elif kind == "mcp_call":
            e = read_model(McpCallItemIn, item, where)
            add_call(i, _call_part(e.id, e.name, e.arguments, where))
            text = e.output if e.output is not None else f"Error: {e.error}"
            outputs.append(InputMessage(i, ChatMessage("tool", text, tool_call_id=e.id)))
        elif kind == "function_call_output":
            o = read_model(FunctionCallOutputItemIn, item, where)
            text = _text(o.output, f"{where}.output")
            outputs.append(InputMessage(i, ChatMessage("tool", text, tool_call_id=o.call_id)))
        else:
            raise APIError(
                400,
                f"{where}.type: unsupported input item type {kind!r} (supported: message, "
                "function_call, function_call_output, mcp_call)",
                param=f"{where}.type",
                code="unsupported_value",
            )
    flush()
    return out


def _text(content: str | list[ContentPartIn], where: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        if part.type not in _TEXT_PARTS or part.text is None:
            raise APIError(
                400,
                f"{where}[{j}].type: only text parts are supported, got {part.type!r}",
                param=f"{where}[{j}].type",
                code="unsupported_value",
            )
        texts.append(part.text)
    return "".join(texts)


def _call_part(call_id: str, name: str, arguments: str, where: str) -> ToolCallPart:
    check_name(name, f"{where}.name")
    try:
        parsed = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise APIError(
            400,
            f"{where}.arguments: must be JSON text of an object",
            param=f"{where}.arguments",
            code="invalid_value",
        )
    return ToolCallPart(call_id, name, arguments if arguments.strip() else "{}")


def check_name(name: str, where: str) -> None:
    try:
        check_tool_name(name, where)
    except ValueError as exc:
        raise APIError(400, str(exc), param=where, code="invalid_value") from None


def read_model(model: type[M], data: dict[str, Any], where: str) -> M:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise from_validation(exc, prefix=_path(where), data=data) from None


def _path(where: str) -> list[int | str]:
    """``"input[3]"`` -> ``["input", 3]`` (the prefix of a field path)."""
    name, _, rest = where.partition("[")
    return [name, int(rest.rstrip("]"))] if rest else [name]
