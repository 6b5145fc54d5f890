"""The canonical trace format "agentrt-trace/1": pydantic models of one JSON Lines file.

Line 1 is a :class:`TraceHeader`; every further line is one :class:`TraceRequest` (an agent
request: a system prompt, a user query and the LLM calls the agent made, in order).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Final, Literal, NewType

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

SCHEMA_ID: Final = "agentrt-trace/1"

TraceRequestId = NewType("TraceRequestId", str)

# Strict: a trace file is data written by tools, so "3" for 3 is a bug to report, not to
# coerce. Sequences stay lax at the container level so Python callers may pass lists.
_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True)
_HashIds = Annotated[tuple[Annotated[StrictInt, Field(ge=0)], ...] | None, Field(strict=False)]
_Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class TextContent(BaseModel):
    """Content given as text; the replayer tokenizes it with the model's tokenizer."""

    model_config = _STRICT
    text: str


class TokenContent(BaseModel):
    """Content given as a token count, optionally with block-hash ids.

    ``hash_ids[i]`` names tokens ``[i*B, (i+1)*B)`` of this content, ``B`` being the
    header's ``hash_block_tokens``; equal ids anywhere in one trace are identical token
    blocks, and a partial last block is the leading part of its block. ``None`` means
    the tokens are unique to this content (shared with nothing).
    """

    model_config = _STRICT
    tokens: int = Field(ge=0)
    hash_ids: _HashIds = None


Content = TextContent | TokenContent


def content_is_empty(content: Content) -> bool:
    """True for zero tokens or empty text."""
    if isinstance(content, TextContent):
        return not content.text
    return content.tokens == 0


class ToolCall(BaseModel):
    """One tool call made by an LLM call.

    ``at`` is the number of output tokens emitted when this call's text is complete
    (``1 <= at <= output tokens``), so a streaming orchestrator could start the tool
    then. ``None``: at the end of the output for token-count outputs; for text outputs
    the replayer finds the call in the tokenized text. ``latency_s`` is the recorded
    tool duration (replay multiplies it by its own stated factor).
    """

    model_config = _STRICT
    name: str = Field(min_length=1)
    at: int | None = Field(default=None, ge=1)
    latency_s: _Seconds
    result: Content
    arguments: dict[str, Any] | None = None


class Call(BaseModel):
    """One LLM call of an agent request: its forced output and the tool calls in it.

    Before this call is sent: the previous call's tool results are appended, then
    ``extra_input`` (new non-tool input, e.g. a follow-up user message), then the client
    waits ``gap_s``.
    """

    model_config = _STRICT
    output: Content
    tool_calls: tuple[ToolCall, ...] = Field(default=(), strict=False)
    gap_s: _Seconds = 0.0
    extra_input: Content | None = None

    @model_validator(mode="after")
    def _positions_fit_output(self) -> Call:
        if content_is_empty(self.output):
            raise ValueError("output: an LLM call emits at least one token")
        last = 0
        for i, tc in enumerate(self.tool_calls):
            if tc.at is None:
                continue
            if not isinstance(self.output, TokenContent):
                raise ValueError(
                    f"tool_calls.{i}.at: positions need a token-count output "
                    "(for text, leave at null and locate the call in the text)"
                )
            if tc.at > self.output.tokens:
                raise ValueError(
                    f"tool_calls.{i}.at: {tc.at} is past the output's {self.output.tokens} tokens"
                )
            if tc.at < last:
                raise ValueError(f"tool_calls.{i}.at: {tc.at} is before the previous call's {last}")
            last = tc.at
        return self


class TraceRequest(BaseModel):
    """One agent request: arrival, shared system prompt, query and its LLM calls.

    Invariants: ``calls`` is non-empty; the last call makes no tool calls (its output is
    the final answer); any other call without tool calls is followed by a call with
    ``extra_input`` (otherwise the agent would have had nothing new to respond to).
    """

    model_config = _STRICT
    type: Literal["request"] = "request"
    id: TraceRequestId = Field(min_length=1)
    arrival_s: _Seconds
    group: str | None = None
    system: Content
    query: Content
    calls: tuple[Call, ...] = Field(min_length=1, strict=False)

    @model_validator(mode="after")
    def _ends_in_final_answer(self) -> TraceRequest:
        last = len(self.calls) - 1
        if self.calls[last].tool_calls:
            raise ValueError(f"calls.{last}: the last call must make no tool calls (final answer)")
        for i, call in enumerate(self.calls[:last]):
            if not call.tool_calls and self.calls[i + 1].extra_input is None:
                raise ValueError(
                    f"calls.{i}: a call without tool calls must be the last, or be "
                    f"followed by a call with extra_input"
                )
        return self

    def contents(self) -> list[tuple[str, Content]]:
        """Every content in prompt order (outputs included), each with its field path."""
        out: list[tuple[str, Content]] = [("system", self.system), ("query", self.query)]
        for i, call in enumerate(self.calls):
            if call.extra_input is not None:
                out.append((f"calls.{i}.extra_input", call.extra_input))
            out.append((f"calls.{i}.output", call.output))
            out.extend(
                (f"calls.{i}.tool_calls.{j}.result", tc.result)
                for j, tc in enumerate(call.tool_calls)
            )
        return out


class TraceHeader(BaseModel):
    """Line 1 of a trace file: where the data came from and how it was scaled.

    ``token_scale`` is the factor applied to every recorded token count (1.0 = as
    recorded); ``hash_block_tokens`` is the number of tokens per block-hash id after
    scaling (``None`` when no content carries hash ids).
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )
    type: Literal["header"] = "header"
    schema_id: Literal["agentrt-trace/1"] = Field(default=SCHEMA_ID, alias="schema")
    source: str = Field(min_length=1)
    description: str = ""
    token_scale: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    hash_block_tokens: int | None = Field(default=None, ge=1)
    license: str | None = None


def check_hash_ids(content: Content, block_tokens: int | None, where: str) -> None:
    """Raise ValueError unless ``content``'s hash ids cover exactly its tokens.

    Args:
        content: the content to check.
        block_tokens: the header's ``hash_block_tokens``.
        where: the field path, for the message.
    """
    if not isinstance(content, TokenContent) or content.hash_ids is None:
        return
    if block_tokens is None:
        raise ValueError(f"{where}.hash_ids: the header declares no hash_block_tokens")
    need = math.ceil(content.tokens / block_tokens)
    if len(content.hash_ids) != need:
        raise ValueError(
            f"{where}.hash_ids: {content.tokens} tokens in blocks of {block_tokens} need "
            f"{need} ids, got {len(content.hash_ids)}"
        )
