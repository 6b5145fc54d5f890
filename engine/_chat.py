"""Chat messages and their ChatML/Hermes rendering, one independent text segment per message.

The segment renderer here and the shipped Jinja template (``templates/hermes_tools.jinja``,
used by ``agentrt engine serve``) produce the same text; a property test holds them to it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from ._types import ToolSchema

Role = Literal["system", "user", "assistant", "tool"]

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
DEFAULT_SYSTEM = "You are a helpful assistant."
GENERATION_PROMPT = f"{IM_START}assistant\n"
TEMPLATE_NAME = "hermes_tools.jinja"

_TOOLS_INTRO = (
    "\n\n# Tools\n\nThese functions are available to you. "
    "Their signatures are listed in <tools></tools> tags:\n<tools>"
)
_TOOLS_OUTRO = (
    "\n</tools>\n\nTo call a function, answer with one block per call, each holding a JSON "
    "object with the function name and its arguments:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)


@dataclass(frozen=True, slots=True)
class ToolCallPart:
    """A tool call inside an assistant message. ``arguments`` is JSON text of an object."""

    id: str
    name: str
    arguments: str


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


def tool_schema_json(tool: ToolSchema) -> dict[str, Any]:
    """The OpenAI-style function object a tool is listed as."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": dict(tool.parameters),
        },
    }


def format_tool_call(name: str, arguments: str) -> str:
    """Text of one call block, exactly as the model is taught to write it."""
    return f'{TOOL_CALL_OPEN}\n{{"name": "{name}", "arguments": {arguments}}}\n{TOOL_CALL_CLOSE}'


def render_header(system: str | None, tools: Sequence[ToolSchema]) -> str:
    """The system block, carrying the tool list when there are tools ("" if neither)."""
    if tools:
        listed = "".join("\n" + dumps(tool_schema_json(t)) for t in tools)
        body = (DEFAULT_SYSTEM if system is None else system) + _TOOLS_INTRO + listed + _TOOLS_OUTRO
        return f"{IM_START}system\n{body}{IM_END}\n"
    if system is None:
        return ""
    return f"{IM_START}system\n{system}{IM_END}\n"


def render_message(msg: ChatMessage) -> str:
    """Text of one non-leading message; independent of its neighbours."""
    if msg.role == "tool":
        return f"{IM_START}user\n<tool_response>\n{msg.content}\n</tool_response>{IM_END}\n"
    if msg.role == "assistant":
        return f"{IM_START}assistant\n{render_assistant_body(msg)}{IM_END}\n"
    return f"{IM_START}{msg.role}\n{msg.content}{IM_END}\n"


def render_assistant_body(msg: ChatMessage) -> str:
    """Content plus call blocks, without the turn's opening and closing markers."""
    calls = "\n".join(format_tool_call(c.name, c.arguments) for c in msg.tool_calls)
    if msg.content and calls:
        return f"{msg.content}\n{calls}"
    return msg.content or calls


def split_system(messages: Sequence[ChatMessage]) -> tuple[str | None, Sequence[ChatMessage]]:
    """A leading system message becomes the header; the rest render one by one."""
    if messages and messages[0].role == "system":
        return messages[0].content, messages[1:]
    return None, messages


def render_segments(
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolSchema] = (),
    add_generation_prompt: bool = False,
) -> list[str]:
    """The conversation as independent text segments: header, each message, generation prompt.

    Every segment but the first begins with ``<|im_start|>`` (a special token), so
    tokenizing the segments one by one gives the tokens of the whole text.
    """
    system, rest = split_system(messages)
    segments = [render_header(system, tools)]
    segments.extend(render_message(m) for m in rest)
    if add_generation_prompt:
        segments.append(GENERATION_PROMPT)
    return [s for s in segments if s]


@functools.cache
def template_source() -> str:
    """The shipped Jinja chat template (for vLLM's chat endpoint and for tests)."""
    return resources.files("agentrt.engine.templates").joinpath(TEMPLATE_NAME).read_text("utf-8")


def render_with_template(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool = False,
) -> str:
    """Render OpenAI-style message dicts through the Jinja template, as vLLM's server would."""
    import jinja2.sandbox

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = dumps
    return env.from_string(template_source()).render(
        messages=list(messages),
        tools=list(tools or []),
        add_generation_prompt=add_generation_prompt,
    )


def message_to_openai(msg: ChatMessage) -> dict[str, Any]:
    """The OpenAI chat-message dict for ``msg`` (arguments stay JSON text)."""
    out: dict[str, Any] = {"role": msg.role, "content": msg.content}
    if msg.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in msg.tool_calls
        ]
    if msg.tool_call_id is not None:
        out["tool_call_id"] = msg.tool_call_id
    return out
