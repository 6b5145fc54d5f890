"""Pydantic models of the OpenAI Responses API: the JSON edge of ``/v1/responses``.

The request body is strict at its top level: a field this server does not know is a 400
naming it, and a known field it does not implement is refused when set to anything but
its neutral value (``_UNSUPPORTED`` in ``_responses_plan``). Input items and tools are
kept as plain JSON objects here and read one by one by ``_responses_plan``, so that an
unknown item type or a bad field is reported with its exact path (``input[3].type``).
Output objects are built as plain dicts (``_responses_items``): they are serialized once.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    # Unknown top-level fields are an error naming them: silently ignoring one could
    # change the answer the client expects (the issue asks for a 400 naming the field).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Lenient(BaseModel):
    # Items echo what the server sent (ids, statuses): extras are ignored.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class TextFormatIn(_Lenient):
    type: Literal["text", "json_schema", "json_object"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextIn(_Lenient):
    format: TextFormatIn | None = None
    verbosity: str | None = None


class StreamOptionsIn(_Lenient):
    include_obfuscation: bool | None = None


class ResponsesRequest(_Strict):
    """``POST /v1/responses``. ``input``, ``tools`` and ``tool_choice`` are read further
    by ``_responses_plan``."""

    model: str
    input: str | list[dict[str, Any]] = ""
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextIn | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool | None = None
    stream_options: StreamOptionsIn | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    include: list[str] | None = None
    top_logprobs: int | None = None
    truncation: str | None = None
    # Known, refused unless neutral (see ``_responses_plan._UNSUPPORTED``).
    background: bool | None = None
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    max_tool_calls: int | None = None
    service_tier: str | None = None
    prompt_cache_retention: str | None = None
    context_management: list[dict[str, Any]] | None = None


class ContentPartIn(_Lenient):
    type: str
    text: str | None = None


class MessageItemIn(_Lenient):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[ContentPartIn]


class FunctionCallItemIn(_Lenient):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str


class FunctionCallOutputItemIn(_Lenient):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[ContentPartIn]


class McpCallItemIn(_Lenient):
    """A server-side call the client echoes back (full-history clients)."""

    type: Literal["mcp_call"]
    id: str
    name: str
    arguments: str
    server_label: str | None = None
    output: str | None = None
    error: str | dict[str, Any] | None = None


class FunctionToolIn(_Lenient):
    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class McpToolIn(_Strict):
    """A request enables an operator-configured server by label; it never names a URL
    or a command (those fields are absent here, so sending one is a 400 naming it)."""

    type: Literal["mcp"]
    server_label: str
    allowed_tools: list[str] | dict[str, Any] | None = None
    require_approval: str | dict[str, Any] | None = None
    server_description: str | None = None


class BuiltinToolIn(_Strict):
    """A built-in enabled by its type (``{"type": "calculator"}``)."""

    type: str
