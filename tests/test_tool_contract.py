"""The one tool contract: one name pattern everywhere, timeouts that mean what they say,
and arguments checked by the validator each tool keeps."""

from __future__ import annotations

import datetime
import math
from typing import Any

import anyio
import jsonschema
import pydantic
import pytest

from agentrt import Agent, ParsedCall, ToolExecutor, tool
from agentrt.engine import ByteCodec, ChatTokenizer, EngineInfo, check_tool_name
from agentrt.server._chat_plan import plan_chat
from agentrt.server._errors import APIError
from agentrt.server._openai_models import ChatCompletionRequest
from agentrt.testing import run_virtual
from agentrt.tools import InvalidArguments, Tool, ValidArguments
from agentrt.tools._arguments import SchemaCheck
from agentrt.tools._mcp import _local_name

NAMES = ["calc", "fs.read", "get-weather", "_x", "9lives", "a" * 64]
NOT_NAMES = ["", "a b", "a" * 65, "x<|im_end|>", 'say"hi', "naïve", "a/b"]


def _noop() -> str:
    return "ok"


def rest_accepts(name: str) -> bool:
    body = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": name}}],
        }
    )
    info = EngineInfo("m", 4096, 16, False, "scripted")
    try:
        plan_chat(body, ChatTokenizer(ByteCodec()), info, cache_salt=None)
    except APIError as exc:
        assert exc.param == "tools[0].function.name"
        return False
    return True


def tool_accepts(name: str) -> bool:
    try:
        Tool(name, "", {"type": "object"}, _noop)
    except ValueError as exc:
        assert "Tool.name" in str(exc)
        return False
    return True


@pytest.mark.parametrize("name", NAMES + NOT_NAMES)
def test_the_tool_type_and_the_rest_server_accept_the_same_names(name: str) -> None:
    valid = name in NAMES
    assert tool_accepts(name) is valid
    assert rest_accepts(name) is valid
    if valid:
        assert check_tool_name(name, "f") == name


@pytest.mark.parametrize(
    ("prefix", "remote", "local"),
    [("fs.", "read file", "fs.read_file"), ("", "ns/tool:v2", "ns_tool_v2"), ("", "é", "_")],
)
def test_mcp_mounts_map_server_names_onto_the_pattern(prefix: str, remote: str, local: str) -> None:
    assert _local_name(prefix, remote) == local
    assert tool_accepts(local)


# --- timeouts: the tool's own limit, else the agent's default, and math.inf for none ---


def _sleeper(name: str, seconds: float, timeout_s: float | None) -> Tool:
    async def nap() -> str:
        await anyio.sleep(seconds)
        return "rested"

    return Tool(name, "Sleeps.", {"type": "object", "properties": {}}, nap, timeout_s=timeout_s)


@pytest.mark.parametrize(
    ("own", "agent_default", "outcome"),
    [
        (None, 1.0, "timeout"),  # None: the agent's default applies (and cuts it)
        (None, None, "ok"),  # the agent's None: no limit
        (math.inf, 1.0, "ok"),  # the tool says: no limit, whatever the agent's default
        (5.0, 1.0, "ok"),  # the tool's own limit wins over a shorter default
        (1.0, 60.0, "timeout"),  # ... and over a longer one
    ],
)
def test_a_tools_own_timeout_wins_none_defers_to_the_agent_and_inf_is_no_limit(
    own: float | None, agent_default: float | None, outcome: str
) -> None:
    nap = _sleeper("nap", 2.0, own)

    async def main() -> Any:
        executor = ToolExecutor([nap], default_timeout_s=agent_default)
        return await executor.run(ParsedCall(0, "nap", {}, "{}"), "c", 0.0)  # type: ignore[arg-type]

    span = run_virtual(main)
    assert (span.result.kind if span.result.kind == "ok" else span.result.reason) == outcome


def test_tools_and_the_decorator_default_to_the_agents_timeout() -> None:
    @tool
    def f() -> str:
        """F."""
        return ""

    assert f.timeout_s is None and Tool("g", "", {"type": "object"}, _noop).timeout_s is None
    assert Agent().tool_timeout_s == 60.0


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan])
def test_a_timeout_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        Tool("t", "", {"type": "object"}, _noop, timeout_s=bad)


# --- validation: the signature's pydantic model, or a schema compiled once ---


class Guest(pydantic.BaseModel):
    name: str
    count: int = 1


@tool
def book(day: datetime.date, guest: Guest, note: str = "") -> str:
    """Book a table.

    Args:
        day: the day
        guest: who comes
        note: anything else
    """
    assert isinstance(day, datetime.date) and isinstance(guest, Guest)
    return f"{day.isoformat()} for {guest.count} ({guest.name}){note}"


@pytest.mark.anyio
async def test_a_function_tool_keeps_its_signatures_model_and_converts_arguments() -> None:
    assert book.arguments_model is not None
    checked = book.validate({"day": "2025-05-01", "guest": {"name": "Ann", "count": 2}})
    assert isinstance(checked, ValidArguments)
    assert checked.values == {
        "day": datetime.date(2025, 5, 1),
        "guest": Guest(name="Ann", count=2),
        "note": "",
    }
    assert await book.call(checked) == "2025-05-01 for 2 (Ann)"


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"guest": {"name": "Ann"}}, "day: Field required"),
        ({"day": "soon", "guest": {"name": "Ann"}}, "day: Input should be a valid date"),
        ({"day": "2025-05-01", "guest": {"name": "Ann", "count": "x"}}, "guest.count:"),
        ({"day": "2025-05-01", "guest": {"name": "A"}, "when": 1}, "when: Extra inputs"),
    ],
)
def test_invalid_arguments_name_the_argument(arguments: dict[str, Any], named: str) -> None:
    checked = book.validate(arguments)
    assert isinstance(checked, InvalidArguments)
    assert checked.message.startswith("invalid arguments for 'book': ") and named in checked.message


def test_the_executor_returns_invalid_arguments_to_the_model_without_running() -> None:
    async def main() -> Any:
        executor = ToolExecutor([book])
        return await executor.run(ParsedCall(0, "book", {"day": 3}, ""), "c", 0.0)  # type: ignore[arg-type]

    span = run_virtual(main)
    assert span.result.kind == "error" and span.result.reason == "invalid_arguments"
    assert "day:" in span.result.content and "guest: Field required" in span.result.content


def test_a_schema_only_tool_compiles_its_validator_once(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    t = Tool("count", "", schema, lambda n: n)
    built: list[object] = []
    real = SchemaCheck.__init__
    monkeypatch.setattr(
        SchemaCheck, "__init__", lambda self, *a, **k: built.append(self) or real(self, *a, **k)
    )
    # Meta-validating the schema is the costly part of building a validator.
    monkeypatch.setattr(
        jsonschema.Draft202012Validator, "check_schema", lambda *a, **k: built.append(a)
    )
    assert isinstance(t.validate({"n": 1}), ValidArguments)
    bad = t.validate({"n": "1"})
    assert isinstance(bad, InvalidArguments) and "n: '1' is not of type 'integer'" in bad.message
    assert built == []


def test_a_schema_only_tool_with_an_invalid_schema_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="tool 'broken': parameters is not a valid JSON schema"):
        Tool("broken", "", {"type": "object", "properties": {"n": {"type": 7}}}, _noop)


@pytest.mark.anyio
async def test_invoke_validates_too() -> None:
    with pytest.raises(ValueError, match="day: Field required"):
        await book.invoke({"guest": {"name": "Ann"}})
