"""Turning a chat-completions request into one engine request: messages, tools, constraint.

The prompt is rendered by the engine's ``ChatTokenizer`` (ChatML turns, the server's tool
format), the same renderer agent runs use, so a conversation continued through this
endpoint keeps hitting the prefix cache. Tool choice maps onto the tool-call grammar
exactly as in agent runs (``agentrt._tool_choice``); without ``tool_choice`` it is "auto"
when tools are given, else "none".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson

from agentrt._tool_choice import (
    DEFAULT_PARALLEL_UNSET,
    NamedTool,
    ParallelUnset,
    ToolChoiceError,
    parallel_calls,
    tool_constraint,
)
from agentrt.engine import (
    CacheHint,
    ChatMessage,
    ChatTokenizer,
    Constraint,
    EngineInfo,
    GenerateRequest,
    JsonSchemaConstraint,
    PromptTooLongError,
    Tier,
    ToolCallPart,
    ToolFormat,
    ToolSchema,
    check_tool_name,
)

from ._chat_sampling import chat_sampling
from ._echo import RememberedTurn, Scope, TurnMemory
from ._errors import APIError
from ._limits import DEFAULT_SCHEMA_DEPTH, DEFAULT_SCHEMA_NODES, SchemaBudget, check_prompt_length
from ._openai_models import ChatCompletionRequest, MessageIn, NamedToolChoiceIn, ToolDefIn
from ._schemas import canonical, check_request_schemas, schema_problem
from ._sessions import ChatSession

_EMPTY_PARAMS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class ChatPlan:
    """What one chat request becomes.

    ``calls_format``: the format whose parser reads tool calls out of the output (None:
    the output is all content). ``roles``: hints by each segment's role, used once the
    request joins a session (``with_session``). ``echoed``: remembered turns whose tokens
    replaced a re-render. ``scope``: whose turn memory. ``session_key``: the
    conversation key the client gave (``prompt_cache_key`` or ``user``; None: none).
    """

    request: GenerateRequest
    calls_format: ToolFormat | None
    stream: bool
    include_usage: bool
    roles: tuple[CacheHint, ...] = ()
    echoed: tuple[RememberedTurn, ...] = ()
    scope: Scope = ""
    session_key: str | None = None
    session: ChatSession | None = None

    def with_session(self, session: ChatSession, priority: int) -> ChatPlan:
        """The request in ``session``: its engine session, ``priority``, hints by role."""
        request = replace(self.request, session=session.id, priority=priority, hints=self.roles)
        return replace(self, request=request, session=session)


def plan_chat(
    body: ChatCompletionRequest,
    tok: ChatTokenizer,
    info: EngineInfo,
    *,
    cache_salt: str | None,
    default_temperature: float = 1.0,
    budget: SchemaBudget | None = None,
    memory: TurnMemory | None = None,
    scope: Scope = "",
    parallel_unset: ParallelUnset = DEFAULT_PARALLEL_UNSET,
) -> ChatPlan:
    """Validate ``body`` and build the engine request.

    CPU-bound (schema checks, rendering, tokenizing): the server calls it off the event
    loop. The schemas are measured against ``budget`` before anything walks them. An
    assistant message that echoes a turn ``memory`` holds for ``scope`` is put in as the
    tokens the model generated; every other message is rendered.
    ``parallel_unset``: what an unset ``parallel_tool_calls`` means (``ParallelUnset``).

    Raises:
        APIError: a field is invalid or unsupported (400, naming the field).
        PromptTooLongError: the rendered prompt does not fit the context.
    """
    check_request_schemas(body, budget or SchemaBudget(DEFAULT_SCHEMA_DEPTH, DEFAULT_SCHEMA_NODES))
    messages = [_message(i, m) for i, m in enumerate(body.messages)]
    tools = [_tool(i, t) for i, t in enumerate(body.tools or [])]
    if len({t.name for t in tools}) != len(tools):
        raise APIError(
            400, "tools: function names must be unique", param="tools", code="invalid_value"
        )
    constraint, parse_calls = _constraint(body, tools, tok.tool_format, parallel_unset)

    check_prompt_length(messages, tools, tok.encode, info.max_model_len)
    segments, tiers, echoed = _segments(messages, tools, tok, memory, scope)
    prompt = tuple(t for seg in segments for t in seg)
    if len(prompt) >= info.max_model_len:
        raise PromptTooLongError(len(prompt), info.max_model_len)
    hints = _hints(tiers, segments) if info.supports_hints else ()
    roles = _role_hints(tiers, segments) if info.supports_hints else ()

    requested = body.max_completion_tokens or body.max_tokens
    room = info.max_model_len - len(prompt)
    sampling = chat_sampling(
        body,
        max_tokens=min(requested, room) if requested else room,
        default_temperature=default_temperature,
        vocab_size=tok.vocab_size,
    )
    request = GenerateRequest(prompt, sampling, constraint, hints, cache_salt=cache_salt)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    calls_format = tok.tool_format if parse_calls else None
    return ChatPlan(
        request,
        calls_format,
        bool(body.stream),
        include_usage,
        roles,
        tuple(echoed),
        scope,
        body.prompt_cache_key or body.user or None,
    )


def _segments(
    messages: list[ChatMessage],
    tools: list[ToolSchema],
    tok: ChatTokenizer,
    memory: TurnMemory | None,
    scope: Scope,
) -> tuple[list[tuple[int, ...]], list[Tier], list[RememberedTurn]]:
    """The prompt's segments (header, each message, generation prompt; the same tokens
    as ``render_segment_ids``, but echoed turns as remembered) and each one's role tier."""
    has_system = bool(messages) and messages[0].role == "system"
    header = tok.render_header(messages[0].content if has_system else None, tools)
    segments: list[tuple[int, ...]] = []
    tiers: list[Tier] = []
    echoed: list[RememberedTurn] = []
    if header:
        segments.append(tuple(header))
        tiers.append(Tier.SYSTEM)
    for m in messages[1 if has_system else 0 :]:
        turn = memory.match(scope, m) if memory is not None and m.role == "assistant" else None
        if turn is not None:
            echoed.append(turn)
            segments.append(turn.segment)
        else:
            segments.append(tuple(tok.render_message(m)))
        tiers.append(_role_tier(m))
    segments.append(tok.generation_prompt)
    tiers.append(Tier.DEFAULT)
    return segments, tiers, echoed


def _role_tier(m: ChatMessage) -> Tier:
    """USER_QUERY, TOOL_OUTPUT, RESPONSE for an earlier answer (no calls), else DEFAULT."""
    if m.role == "user":
        return Tier.USER_QUERY
    if m.role == "tool":
        return Tier.TOOL_OUTPUT
    if m.role == "assistant" and not m.tool_calls:
        return Tier.RESPONSE
    return Tier.DEFAULT


def _text(i: int, m: MessageIn) -> str:
    if m.content is None:
        return ""
    if isinstance(m.content, str):
        return m.content
    parts = []
    for j, part in enumerate(m.content):
        if part.type != "text" or part.text is None:
            where = f"messages[{i}].content[{j}].type"
            raise APIError(
                400,
                f"{where}: only text content parts are supported, got {part.type!r}",
                param=where,
                code="unsupported_value",
            )
        parts.append(part.text)
    return "".join(parts)


def _message(i: int, m: MessageIn) -> ChatMessage:
    text = _text(i, m)
    if m.role == "assistant":
        calls = tuple(
            _call_part(i, j, c.id, c.function.name, c.function.arguments)
            for j, c in enumerate(m.tool_calls or [])
        )
        return ChatMessage("assistant", text, calls, name=m.name)
    if m.tool_calls:
        raise APIError(
            400,
            f"messages[{i}].tool_calls: only assistant messages carry tool calls",
            param=f"messages[{i}].tool_calls",
            code="invalid_value",
        )
    if m.role == "tool":
        if not m.tool_call_id:
            where = f"messages[{i}].tool_call_id"
            raise APIError(
                400,
                f"{where}: a 'tool' message must name the tool call it answers",
                param=where,
                code="missing_required_parameter",
            )
        return ChatMessage("tool", text, tool_call_id=m.tool_call_id)
    # "developer" is OpenAI's newer name for the system role.
    return ChatMessage("system" if m.role == "developer" else m.role, text, name=m.name)


def _call_part(i: int, j: int, call_id: str, name: str, arguments: str) -> ToolCallPart:
    _check_name(name, f"messages[{i}].tool_calls[{j}].function.name")
    where = f"messages[{i}].tool_calls[{j}].function.arguments"
    try:
        parsed = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        raise APIError(
            400, f"{where}: must be JSON text of an object", param=where, code="invalid_value"
        ) from None
    if not isinstance(parsed, dict):
        raise APIError(
            400, f"{where}: must be JSON text of an object", param=where, code="invalid_value"
        )
    # Kept verbatim: the model's own call text renders back to the tokens it generated.
    return ToolCallPart(call_id, name, arguments if arguments.strip() else "{}")


def _tool(i: int, t: ToolDefIn) -> ToolSchema:
    fn = t.function
    _check_name(fn.name, f"tools[{i}].function.name")
    params = fn.parameters if fn.parameters is not None else _EMPTY_PARAMS
    problem = schema_problem(canonical(params), require_object=True)
    if problem is not None:
        where = f"tools[{i}].function.parameters"
        raise APIError(400, f"{where}: {problem}", param=where, code="invalid_function_parameters")
    return ToolSchema(fn.name, fn.description or "", params)


def _check_name(name: str, where: str) -> None:
    """Tool names are echoed into the prompt: only the one allowed pattern passes."""
    try:
        check_tool_name(name, where)
    except ValueError as exc:
        raise APIError(400, str(exc), param=where, code="invalid_value") from None


def _constraint(
    body: ChatCompletionRequest,
    tools: list[ToolSchema],
    calls_format: ToolFormat,
    parallel_unset: ParallelUnset,
) -> tuple[Constraint | None, bool]:
    """The response's grammar, and whether calls are parsed out of it.

    ``response_format`` shapes the answer the model writes: with tool_choice "auto" one
    grammar allows either calls or that answer; with "required" or a named tool the
    response is calls only, so there is no answer to shape; with "none" it is the answer.
    """
    raw = body.tool_choice if body.tool_choice is not None else ("auto" if tools else "none")
    choice = NamedTool(raw.function.name) if isinstance(raw, NamedToolChoiceIn) else raw
    answer = _answer_schema(body)
    parallel, end_after_call = parallel_calls(body.parallel_tool_calls, parallel_unset)
    try:
        calls = tool_constraint(
            choice,
            tools,
            parallel=parallel,
            tool_format=calls_format.name,
            end_after_call=end_after_call,
        )
    except ToolChoiceError as exc:
        raise _choice_error(exc) from None
    if calls is None:
        return (None if answer is None else JsonSchemaConstraint(answer)), False
    if answer is not None and not calls.required:
        # Were the answer branch taken, calls must still be their ``required`` shape.
        calls = replace(calls, answer_schema=answer, end_after_call=end_after_call)
    return calls, True


def _answer_schema(body: ChatCompletionRequest) -> dict[str, Any] | None:
    """The JSON schema ``response_format`` asks answers to match (None: free text)."""
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "object"}
    if fmt.json_schema is None:
        raise APIError(
            400,
            "response_format.json_schema: required when type is 'json_schema'",
            param="response_format.json_schema",
            code="invalid_value",
        )
    # Bounded and checked against its meta-schema already (``check_request_schemas``).
    return dict(fmt.json_schema.schema_)


def _choice_error(exc: ToolChoiceError) -> APIError:
    if exc.problem == "unknown_tool":
        where = "tool_choice.function.name"
        return APIError(
            400, f"{where}: {exc.label!r} is not in tools", param=where, code="invalid_value"
        )
    return APIError(
        400,
        f"tool_choice: {exc.label!r} needs at least one tool in tools",
        param="tool_choice",
        code="invalid_value",
    )


def _hints(tiers: list[Tier], segments: list[tuple[int, ...]]) -> tuple[CacheHint, ...]:
    """Without a session: system prompt + tool list is the SYSTEM tier (shared by every
    request of an app); the conversation after it DEFAULT; the generation prompt stays
    unlabeled."""
    header = len(segments[0]) if tiers[0] == Tier.SYSTEM else 0
    body_end = sum(len(s) for s in segments[:-1])
    hints = []
    if header:
        hints.append(CacheHint(0, header, Tier.SYSTEM))
    if body_end > header:
        hints.append(CacheHint(header, body_end, Tier.DEFAULT))
    return tuple(hints)


def _role_hints(tiers: list[Tier], segments: list[tuple[int, ...]]) -> tuple[CacheHint, ...]:
    """With a session: each segment its role's tier, adjacent ranges of one tier merged."""
    merged: list[tuple[int, int, Tier]] = []
    pos = 0
    for tier, seg in zip(tiers, segments, strict=True):
        if not seg:
            continue
        if merged and merged[-1][2] == tier:
            merged[-1] = (merged[-1][0], pos + len(seg), tier)
        else:
            merged.append((pos, pos + len(seg), tier))
        pos += len(seg)
    return tuple(CacheHint(a, b, t) for a, b, t in merged)
