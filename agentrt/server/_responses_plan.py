"""Reading a ``/v1/responses`` request: input items, tools, tool choice, format, sampling.

Everything here is checked before a token is generated, and every refusal is a 400
naming the field (``input[2].type``, ``tools[0].server_label``). Input items are read by
``_responses_input``. Tool choice maps onto the one tool-choice mapping of the loop
(``agentrt._tool_choice``) by tool name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentrt._tool_choice import (
    ParallelUnset,
    ToolChoice,
    ToolChoiceError,
    check_choice,
    parallel_calls,
    parse_choice,
)
from agentrt.engine import (
    Constraint,
    JsonSchemaConstraint,
    SamplingOptions,
    ToolSchema,
)
from agentrt.tools import Tool

from ._errors import APIError
from ._limits import SchemaBudget
from ._responses_input import InputMessage, check_name, read_items, read_model
from ._responses_models import (
    BuiltinToolIn,
    FunctionToolIn,
    McpToolIn,
    ResponsesRequest,
)
from ._responses_tools import HostedTools
from ._schemas import canonical, schema_problem

_EMPTY_PARAMS: dict[str, Any] = {"type": "object", "properties": {}}
# Known fields this server does not implement, and the values that mean "not used".
_UNSUPPORTED: dict[str, tuple[object, ...]] = {
    "background": (None, False),
    "conversation": (None,),
    "prompt": (None,),
    "reasoning": (None, {}),
    "max_tool_calls": (None,),
    "service_tier": (None, "auto", "default"),
    "prompt_cache_retention": (None,),
    "context_management": (None, []),
    "truncation": (None, "disabled"),
}
# What ``include`` may list: the one addition this server makes to its output.
INCLUDE_LOGPROBS = "message.output_text.logprobs"
_URL_FIELDS = ("server_url", "connector_id", "headers", "authorization")


@dataclass(frozen=True, slots=True)
class ResponsesPlan:
    """What one request asks for, checked. ``hosted``: the server-side tools it enabled,
    ``labels`` their group labels by tool name; ``functions``: the client's tools."""

    body: ResponsesRequest
    instructions: str
    input: tuple[InputMessage, ...]
    functions: tuple[ToolSchema, ...]
    hosted: tuple[Tool, ...]
    labels: dict[str, str]
    tool_choice: ToolChoice
    answer_constraint: Constraint | None
    sampling: SamplingOptions
    parallel: bool  # several calls may follow in one response (the server's policy)

    @property
    def schemas(self) -> tuple[ToolSchema, ...]:
        """Every tool the model is shown: server-side ones first, then the client's."""
        return (*(t.schema for t in self.hosted), *self.functions)


def plan_responses(
    body: ResponsesRequest,
    hosted: HostedTools,
    *,
    budget: SchemaBudget,
    default_temperature: float,
    parallel_unset: ParallelUnset,
) -> ResponsesPlan:
    """Check ``body`` and read it into a plan (CPU-bound: run off the event loop).
    ``parallel_unset``: what an unset ``parallel_tool_calls`` means (``ServerConfig``).

    Raises:
        APIError: 400 naming the field that is unsupported or invalid.
    """
    for name, neutral in _UNSUPPORTED.items():
        if getattr(body, name) not in neutral:
            raise APIError(
                400,
                f"{name}: not supported by this server",
                param=name,
                code="unsupported_parameter",
            )
    functions, tools, labels = _tools(body.tools or [], hosted, budget)
    names = [t.name for t in tools] + [f.name for f in functions]
    choice = _choice(body.tool_choice, hosted, names)
    constraint = _format(body, budget, has_calls=choice != "none" and bool(names))
    messages = read_items(body.input)
    instructions = body.instructions or ""
    if body.previous_response_id is None:
        # Leading system/developer items are the system prompt, with ``instructions``.
        lead = []
        while messages and messages[0].message.role == "system":
            lead.append(messages.pop(0).message.content)
        instructions = "\n\n".join(filter(None, [instructions, *lead]))
    return ResponsesPlan(
        body,
        instructions or "You are a helpful assistant.",
        tuple(messages),
        tuple(functions),
        tuple(tools),
        labels,
        choice,
        constraint,
        _sampling(body, default_temperature),
        # The chat path's policy for an unset ``parallel_tool_calls`` (one rule for both;
        # the turn loop has no ``end_after_call``, so ``end_first`` allows calls here).
        parallel_calls(body.parallel_tool_calls, parallel_unset)[0],
    )


def _tools(
    raw: list[dict[str, Any]], hosted: HostedTools, budget: SchemaBudget
) -> tuple[list[ToolSchema], list[Tool], dict[str, str]]:
    functions: list[ToolSchema] = []
    tools: list[Tool] = []
    labels: dict[str, str] = {}
    seen: set[str] = set()

    def claim(name: str, where: str) -> None:
        if name in seen:
            raise APIError(
                400,
                f"{where}: tool name {name!r} is given twice",
                param=where,
                code="invalid_value",
            )
        seen.add(name)

    for i, t in enumerate(raw):
        kind = t.get("type")
        if kind == "function":
            fn = read_model(FunctionToolIn, t, f"tools[{i}]")
            check_name(fn.name, f"tools[{i}].name")
            params = fn.parameters if fn.parameters is not None else _EMPTY_PARAMS
            budget.charge(f"tools[{i}].parameters", params, extra=1)
            problem = schema_problem(canonical(params), require_object=True)
            if problem is not None:
                where = f"tools[{i}].parameters"
                raise APIError(400, f"{where}: {problem}", param=where, code="invalid_value")
            claim(fn.name, f"tools[{i}].name")
            functions.append(ToolSchema(fn.name, fn.description or "", params))
            continue
        label, allowed = _hosted_label(t, i, hosted)
        group = hosted.group(label) or ()
        for tool in group:
            if allowed is None or tool.name in allowed:
                claim(tool.name, f"tools[{i}]")
                tools.append(tool)
                labels[tool.name] = label
    return functions, tools, labels


def _hosted_label(t: dict[str, Any], i: int, hosted: HostedTools) -> tuple[str, set[str] | None]:
    """The group a hosted-tool entry enables, and the tool names it allows (None: all)."""
    kind = t.get("type")
    if kind != "mcp":
        entry = read_model(BuiltinToolIn, t, f"tools[{i}]")
        if not hosted.is_builtin(entry.type):
            offered = ["function", "mcp", *(lb for lb in hosted.labels if hosted.is_builtin(lb))]
            where = f"tools[{i}].type"
            raise APIError(
                400,
                f"{where}: unsupported tool type {entry.type!r}; this server offers {offered}",
                param=where,
                code="unsupported_value",
            )
        return entry.type, None
    for name in _URL_FIELDS:
        if name in t:
            where = f"tools[{i}].{name}"
            raise APIError(
                400,
                f"{where}: this server runs only the MCP servers its operator configured "
                f"({list(hosted.labels)}); a request names one by server_label",
                param=where,
                code="unsupported_parameter",
            )
    mcp = read_model(McpToolIn, t, f"tools[{i}]")
    if hosted.group(mcp.server_label) is None:
        where = f"tools[{i}].server_label"
        raise APIError(
            400,
            f"{where}: {mcp.server_label!r} is not configured on this server; "
            f"configured: {list(hosted.labels)}",
            param=where,
            code="invalid_value",
        )
    if mcp.require_approval not in (None, "never"):
        where = f"tools[{i}].require_approval"
        raise APIError(
            400, f"{where}: only 'never' is supported", param=where, code="unsupported_value"
        )
    allowed = mcp.allowed_tools
    if isinstance(allowed, dict):
        names = allowed.get("tool_names")
        allowed = names if isinstance(names, list) else None
    return mcp.server_label, None if allowed is None else {str(n) for n in allowed}


def _choice(raw: str | dict[str, Any] | None, hosted: HostedTools, names: list[str]) -> ToolChoice:
    choice: ToolChoice
    if raw is None:
        choice = "auto" if names else "none"
    elif isinstance(raw, str):
        if raw not in ("auto", "none", "required"):
            raise APIError(
                400,
                f"tool_choice: expected 'auto', 'none', 'required' or an object, got {raw!r}",
                param="tool_choice",
                code="invalid_value",
            )
        choice = raw
    else:
        kind = raw.get("type")
        name = raw.get("name")
        if kind == "mcp" and name is None:
            group = hosted.group(str(raw.get("server_label")))
            name = group[0].name if group and len(group) == 1 else None
        elif kind not in ("function", "mcp") and isinstance(kind, str) and hosted.is_builtin(kind):
            group = hosted.group(kind) or ()
            name = group[0].name if len(group) == 1 else None
        if not isinstance(name, str):
            raise APIError(
                400,
                f"tool_choice: cannot tell which tool {raw!r} names",
                param="tool_choice",
                code="invalid_value",
            )
        choice = name
    try:
        check_choice(parse_choice(choice), names)
    except ToolChoiceError as exc:
        raise APIError(
            400, f"tool_choice: {exc}", param="tool_choice", code="invalid_value"
        ) from None
    return choice


def _format(body: ResponsesRequest, budget: SchemaBudget, *, has_calls: bool) -> Constraint | None:
    fmt = body.text.format if body.text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if has_calls:
        # One decode follows one grammar: a JSON answer or tool calls, not both.
        raise APIError(
            400,
            "text.format: a JSON format cannot be combined with tool calls; set "
            "tool_choice to 'none' or drop text.format",
            param="text.format",
            code="unsupported_value",
        )
    if fmt.type == "json_object":
        return JsonSchemaConstraint({"type": "object"})
    where = "text.format.schema"
    if fmt.schema_ is None:
        raise APIError(400, f"{where}: required for json_schema", param=where, code="invalid_value")
    budget.charge(where, fmt.schema_)
    problem = schema_problem(canonical(fmt.schema_), require_object=False)
    if problem is not None:
        raise APIError(400, f"{where}: {problem}", param=where, code="invalid_value")
    return JsonSchemaConstraint(fmt.schema_)


def _sampling(body: ResponsesRequest, default_temperature: float) -> SamplingOptions:
    if body.max_output_tokens is not None and body.max_output_tokens < 1:
        raise APIError(
            400, "max_output_tokens: must be >= 1", param="max_output_tokens", code="invalid_value"
        )
    temperature = default_temperature if body.temperature is None else body.temperature
    top_p = 1.0 if body.top_p is None else body.top_p
    for name, value, ok in (
        ("temperature", temperature, 0 <= temperature <= 2),
        ("top_p", top_p, 0 < top_p <= 1),
    ):
        if not ok:
            raise APIError(400, f"{name}: out of range: {value}", param=name, code="invalid_value")
    # No limit given: the engine cuts the budget to what the context leaves.
    budget = body.max_output_tokens or 1 << 20
    return SamplingOptions(
        max_tokens=budget, temperature=temperature, top_p=top_p, logprobs=_logprobs(body)
    )


def _logprobs(body: ResponsesRequest) -> int | None:
    """How many alternatives per token to report (None: no logprobs). OpenAI's switch is
    ``include: ["message.output_text.logprobs"]``; asking for alternatives with
    ``top_logprobs`` >= 1 turns them on too (a request that asks for them gets them)."""
    for i, item in enumerate(body.include or []):
        if item != INCLUDE_LOGPROBS:
            where = f"include[{i}]"
            raise APIError(
                400,
                f"{where}: {item!r} is not supported; this server can include only "
                f"{INCLUDE_LOGPROBS!r}",
                param=where,
                code="unsupported_value",
            )
    top = body.top_logprobs
    if top is not None and not 0 <= top <= 20:
        raise APIError(
            400,
            f"top_logprobs: must be in [0, 20], got {top}",
            param="top_logprobs",
            code="invalid_value",
        )
    if INCLUDE_LOGPROBS in (body.include or []) or (top or 0) > 0:
        return top or 0
    return None
