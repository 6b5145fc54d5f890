"""The ``Tool`` type and the ``@tool`` decorator: a typed Python function the model can call.

The JSON schema of the arguments is generated from the function's signature through
pydantic; the description comes from the docstring (its ``Args:`` section describes
each parameter). Each tool keeps the validator of its arguments: the pydantic model of
the signature for ``@tool`` functions, a JSON-schema validator compiled once for tools
given only a schema (MCP servers).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_type_hints, overload

import anyio
import anyio.to_thread
import orjson
import pydantic

from agentrt.engine import ToolSchema, check_tool_name

from ._arguments import ArgumentCheck, InvalidArguments, ValidArguments, check_for


class ToolFailure(Exception):
    """Raise inside a tool to return a clear error message to the model (not a crash)."""


@dataclass(frozen=True, slots=True)
class Tool:
    """A callable the model may invoke by name.

    Invariants: ``name`` matches ``agentrt.engine.TOOL_NAME_PATTERN``; ``parameters`` is
    a JSON schema of an object; the arguments' validator is built once, here, and kept.
    ``fn`` takes the arguments as keyword arguments and may be sync (run in a worker
    thread) or async.

    Attributes:
        timeout_s: wall-clock limit of one call, in seconds. None: the running agent's
            default (``Agent.tool_timeout_s``, 60 s unless set). ``math.inf``: no limit.
        expected_latency_s: a static guess of one call's duration, used for the TTL of
            split-prefill cache hints until calls have been measured.
        side_effect_free: calling it twice is harmless (safe to start speculatively).
        arguments_model: the pydantic model of ``fn``'s signature (``@tool`` sets it;
            arguments are validated and converted with it). None: validated against
            ``parameters`` with a JSON-schema validator.

    Raises:
        ValueError: naming the field, for an invalid name, schema or timeout.
    """

    name: str
    description: str
    parameters: Mapping[str, Any]
    fn: Callable[..., Any]
    timeout_s: float | None = None
    expected_latency_s: float | None = None
    side_effect_free: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)
    arguments_model: type[pydantic.BaseModel] | None = None
    _check: ArgumentCheck = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_tool_name(self.name, "Tool.name")
        if self.parameters.get("type", "object") != "object":
            raise ValueError(f"tool {self.name!r}: parameters must be an object schema")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise ValueError(f"tool {self.name!r}: timeout_s must be positive (or None)")
        object.__setattr__(
            self, "_check", check_for(self.name, self.parameters, self.arguments_model)
        )

    @property
    def schema(self) -> ToolSchema:
        """How the model sees this tool."""
        return ToolSchema(self.name, self.description, self.parameters)

    def validate(self, arguments: Mapping[str, Any]) -> ValidArguments | InvalidArguments:
        """Check the model's arguments; the valid ones come back converted to the
        function's types (e.g. a pydantic model argument as an instance of it)."""
        return self._check.validate(arguments)

    async def invoke(self, arguments: Mapping[str, Any]) -> str:
        """Validate ``arguments``, run the tool once, and return its result as text.

        Raises:
            ValueError: the arguments are invalid (the message names the argument).
            Exception: whatever the tool raises (the executor turns it into an error
                result for the model).
        """
        checked = self.validate(arguments)
        if isinstance(checked, InvalidArguments):
            raise ValueError(checked.message)
        return await self.call(checked)

    async def call(self, arguments: ValidArguments) -> str:
        """Run the tool with arguments ``validate`` accepted; the result as text (JSON for
        non-string results). Exceptions propagate."""
        values = arguments.values
        if inspect.iscoroutinefunction(self.fn):
            result = await self.fn(**values)
        else:
            # abandon_on_cancel: a cancelled run must not wait for a blocking function.
            result = await anyio.to_thread.run_sync(
                lambda: self.fn(**values), abandon_on_cancel=True
            )
            if inspect.isawaitable(result):
                result = await result
        return result_text(result)


def result_text(result: Any) -> str:
    """Tool results reach the model as text: strings verbatim, everything else as JSON."""
    if isinstance(result, str):
        return result
    if isinstance(result, pydantic.BaseModel):
        return result.model_dump_json()
    try:
        return orjson.dumps(result, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return str(result)


def _doc_parts(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """Summary text and per-argument descriptions from a Google-style docstring."""
    doc = inspect.getdoc(fn) or ""
    summary: list[str] = []
    args: dict[str, str] = {}
    section = "summary"
    current: str | None = None
    for line in doc.splitlines():
        stripped = line.strip()
        if re.match(r"^(Args|Arguments|Parameters):$", stripped):
            section, current = "args", None
            continue
        if re.match(r"^(Returns|Raises|Yields|Examples?|Notes?):$", stripped):
            section = "other"
            continue
        if section == "summary":
            summary.append(line)
        elif section == "args" and stripped:
            m = re.match(r"^(\*{0,2}\w+)\s*(\([^)]*\))?:\s*(.*)$", stripped)
            if m and line.startswith((" ", "\t")) and not line.startswith(" " * 8):
                current = m.group(1).lstrip("*")
                args[current] = m.group(3)
            elif current is not None:
                args[current] = f"{args[current]} {stripped}".strip()
    return "\n".join(summary).strip(), args


def arguments_model(fn: Callable[..., Any]) -> type[pydantic.BaseModel]:
    """The pydantic model of ``fn``'s keyword arguments (unknown arguments are refused)."""
    _, arg_docs = _doc_parts(fn)
    hints = get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    for pname, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {fn.__name__}: *args/**kwargs cannot be described to a model")
        annotation = hints.get(pname, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (annotation, pydantic.Field(default, description=arg_docs.get(pname)))
    config = pydantic.ConfigDict(extra="forbid")
    return pydantic.create_model(f"{fn.__name__}_arguments", __config__=config, **fields)


def schema_from_function(fn: Callable[..., Any]) -> dict[str, Any]:
    """JSON schema of ``fn``'s keyword arguments, generated through pydantic."""
    return _schema_of(arguments_model(fn))


def _schema_of(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    schema.setdefault("properties", {})
    return schema


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    expected_latency_s: float | None = None,
    side_effect_free: bool = False,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    expected_latency_s: float | None = None,
    side_effect_free: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a typed function (sync or async) into a ``Tool``.

    Usable bare (``@tool``) or with options (``@tool(timeout_s=5)``). ``timeout_s``:
    None uses the agent's default (``Agent.tool_timeout_s``), ``math.inf`` means no
    limit. Arguments are validated with the pydantic model of the signature, which the
    tool keeps.
    """

    def wrap(f: Callable[..., Any]) -> Tool:
        summary, _ = _doc_parts(f)
        model = arguments_model(f)
        return Tool(
            name=name or f.__name__,
            description=description if description is not None else summary,
            parameters=_schema_of(model),
            fn=f,
            timeout_s=timeout_s,
            expected_latency_s=expected_latency_s,
            side_effect_free=side_effect_free,
            arguments_model=model,
        )

    return wrap(fn) if fn is not None else wrap


AsyncToolFn = Callable[..., Awaitable[Any]]
