"""Pydantic models of the OpenAI chat-completions API: the JSON edge of ``/v1/chat/completions``.

Requests accept what the official ``openai`` Python client sends; unknown fields are
ignored, but every sampling parameter of OpenAI's API and of vLLM's ``SamplingParams``
is declared, so none is accepted and dropped: each reaches the engine
(``SamplingOptions``) or, for ``n > 1``, is refused with a 400 naming it. Types are strict, as
OpenAI's own API is: ``"10"`` is no integer and ``"yes"`` no boolean (an integer is a
number, though).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    # Unknown fields are ignored, as OpenAI-compatible servers do: clients send extras.
    # Strict: a value of the wrong JSON type is an error, never coerced.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class ContentPartIn(_In):
    type: str
    text: str | None = None


class FunctionCallIn(_In):
    name: str
    arguments: str = "{}"


class ToolCallIn(_In):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallIn


class MessageIn(_In):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPartIn] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None


class FunctionDefIn(_In):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefIn(_In):
    type: Literal["function"]
    function: FunctionDefIn


class NamedFunctionIn(_In):
    name: str


class NamedToolChoiceIn(_In):
    type: Literal["function"]
    function: NamedFunctionIn


class StreamOptionsIn(_In):
    include_usage: bool = False


class JsonSchemaSpecIn(_In):
    name: str = "response"
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormatIn(_In):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpecIn | None = None


class ChatCompletionRequest(_In):
    model: str
    messages: list[MessageIn] = Field(min_length=1)
    tools: list[ToolDefIn] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoiceIn | None = None
    parallel_tool_calls: bool | None = None
    stream: bool | None = False
    stream_options: StreamOptionsIn | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**63)  # a 64-bit integer
    stop: str | list[str] | None = None
    response_format: ResponseFormatIn | None = None
    # Only 1 (``_chat_plan`` refuses more, naming the field): see docs/COMPATIBILITY.md.
    n: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    repetition_penalty: float | None = Field(default=None, gt=0)
    # Token id (as a JSON key, so a string) -> bias, OpenAI's range.
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    # vLLM's extensions: -1 or 0 turn top_k off.
    top_k: int | None = Field(default=None, ge=-1)
    min_p: float | None = Field(default=None, ge=0, le=1)
    stop_token_ids: list[Annotated[int, Field(ge=0)]] | None = None
    user: str | None = None
    # OpenAI's conversation key for its prompt cache: here it names the chat session.
    prompt_cache_key: str | None = Field(default=None, max_length=1024)
    # vLLM's extension (``extra_body={"ignore_eos": True}``): decode exactly max_tokens.
    ignore_eos: bool | None = None


# ---- responses --------------------------------------------------------------------


class FunctionCallOut(BaseModel):
    name: str
    arguments: str


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallOut


class AssistantMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: None = None
    tool_calls: list[ToolCallOut] | None = None


class TopLogprobOut(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprobOut(TopLogprobOut):
    top_logprobs: list[TopLogprobOut]


class ChoiceLogprobsOut(BaseModel):
    content: list[TokenLogprobOut] | None
    refusal: None = None


class ChoiceOut(BaseModel):
    index: int = 0
    message: AssistantMessageOut
    logprobs: ChoiceLogprobsOut | None = None
    finish_reason: Literal["stop", "length", "tool_calls"]


class PromptTokensDetails(BaseModel):
    cached_tokens: int


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails


class ChatCompletionOut(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChoiceOut]
    usage: UsageOut
    system_fingerprint: str | None = None


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "agentrt"
    max_model_len: int


class ModelListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


def usage(prompt: int, completion: int, cached: int) -> UsageOut:
    return UsageOut(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
    )
