"""ChatML turns around a tool format: one independent segment of pieces per message.

Every segment is ``<|im_start|>role\\n`` + body + ``<|im_end|>\\n``, where the tool format
(``_formats``) writes the bodies that involve tools: the tool list in the system turn,
an assistant's calls, a tool's result. Only the ChatML markers and the format's own
markers are ``Marker`` pieces; everything a user, a tool or the model wrote is plain
text (see ``_messages``). With the Hermes format the text equals the shipped Jinja
template's (``templates/hermes_tools.jinja``, used by ``agentrt engine serve``); a
property test holds them to it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from ._formats import ToolFormat
from ._formats._base import tool_json
from ._messages import ChatMessage, Marker, Pieces, dumps, pieces_text
from ._types import ToolSchema

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
DEFAULT_SYSTEM = "You are a helpful assistant."
GENERATION_PROMPT: Pieces = (Marker(IM_START), "assistant\n")
TURN_END: Pieces = (Marker(IM_END), "\n")
TEMPLATE_NAME = "hermes_tools.jinja"


def _turn(role: str, body: Pieces) -> Pieces:
    return (Marker(IM_START), f"{role}\n", *body, *TURN_END)


def render_header(system: str | None, tools: Sequence[ToolSchema], fmt: ToolFormat) -> Pieces:
    """The system turn, carrying the tool list when there are tools (empty if neither)."""
    if tools:
        return _turn("system", fmt.tools_block(DEFAULT_SYSTEM if system is None else system, tools))
    if system is None:
        return ()
    return _turn("system", (system,))


def render_message(msg: ChatMessage, fmt: ToolFormat) -> Pieces:
    """One non-leading message; independent of its neighbours."""
    if msg.role == "tool":
        return _turn(*fmt.result_turn(msg))
    if msg.role == "assistant":
        return _turn("assistant", fmt.assistant_body(msg.content, msg.tool_calls))
    return _turn(msg.role, (msg.content,))


def split_system(messages: Sequence[ChatMessage]) -> tuple[str | None, Sequence[ChatMessage]]:
    """A leading system message becomes the header; the rest render one by one."""
    if messages and messages[0].role == "system":
        return messages[0].content, messages[1:]
    return None, messages


def render_segments(
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolSchema],
    add_generation_prompt: bool,
    fmt: ToolFormat,
) -> list[Pieces]:
    """The conversation as independent segments: header, each message, generation prompt.

    Every segment but the first begins with the ``<|im_start|>`` marker (a special
    token), so tokenizing the segments one by one gives the tokens of the whole.
    """
    system, rest = split_system(messages)
    segments = [render_header(system, tools, fmt)]
    segments.extend(render_message(m, fmt) for m in rest)
    if add_generation_prompt:
        segments.append(GENERATION_PROMPT)
    return [s for s in segments if s]


def render_text(
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolSchema],
    add_generation_prompt: bool,
    fmt: ToolFormat,
) -> str:
    """The conversation as one string (what a Jinja chat template would produce)."""
    return "".join(
        pieces_text(s) for s in render_segments(messages, tools, add_generation_prompt, fmt)
    )


def tool_schema_json(tool: ToolSchema) -> dict[str, Any]:
    """The OpenAI-style function object a tool is listed as."""
    return tool_json(tool)


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
