"""Strict request types (a 400 naming the field, as OpenAI's API answers), tool messages
that name their call, and failed runs that report their cause (ScriptedEngine)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from agentrt.engine import (
    EngineError,
    EngineProxy,
    GenerateRequest,
    ScriptedEngine,
    TimingModel,
    TokenDelta,
)
from agentrt.server import calculator_agent, create_app, running_server
from agentrt.server._errors import as_api_error, describe

pytestmark = pytest.mark.anyio

FAST = TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0005)
USER = [{"role": "user", "content": "hi"}]
ADD = {
    "type": "function",
    "function": {"name": "add", "parameters": {"type": "object", "properties": {}}},
}


@asynccontextmanager
async def served(engine: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine, agents=[calculator_agent()])
    async with running_server(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as c:
        yield c


@pytest.mark.parametrize(
    ("extra", "param", "got"),
    [
        ({"max_tokens": "10"}, "max_tokens", "a string"),
        ({"max_tokens": 10.0}, "max_tokens", "a number"),
        ({"stream": "yes"}, "stream", "a string"),
        ({"stream": 1}, "stream", "an integer"),
        ({"temperature": "0.5"}, "temperature", "a string"),
        ({"top_p": True}, "top_p", "a boolean"),
        ({"seed": 1.5}, "seed", "a number"),
        ({"n": "1"}, "n", "a string"),
        ({"logprobs": 0}, "logprobs", "an integer"),
        ({"parallel_tool_calls": "true"}, "parallel_tool_calls", "a string"),
        ({"ignore_eos": "false"}, "ignore_eos", "a string"),
        ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage", "a string"),
        ({"user": 7}, "user", "an integer"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "an integer"),
        (
            {"messages": [{"role": "user", "content": "a", "name": ["x"]}]},
            "messages[0].name",
            "an array",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": 5}}]},
            "tools[0].function.name",
            "an integer",
        ),
    ],
)
async def test_a_value_of_the_wrong_type_is_a_400_naming_the_field(
    extra: dict[str, Any], param: str, got: str
) -> None:
    engine = ScriptedEngine(["ok"], timing=FAST)
    async with served(engine) as c:
        r = await c.post(
            "/v1/chat/completions", json={"model": "scripted", "messages": USER, **extra}
        )
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["code"], err["param"]) == ("invalid_value", param)
    assert err["message"].startswith(f"{param}: ") and err["message"].endswith(f"got {got}")
    assert engine.requests == []


async def test_an_integer_is_a_number() -> None:
    engine = ScriptedEngine(["ok"], timing=FAST)
    async with served(engine) as c:
        r = await c.post(
            "/v1/chat/completions",
            json={"model": "scripted", "messages": USER, "temperature": 1, "top_p": 1},
        )
    assert r.status_code == 200
    assert engine.requests[0].sampling.temperature == 1.0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "1+1", "stream": "yes"}, "stream"),
        ({"input": 5}, "input"),
        ({"input": "1+1", "session_id": 3}, "session_id"),
    ],
)
async def test_run_bodies_are_strict_too(body: dict[str, Any], param: str) -> None:
    engine = ScriptedEngine(["ok"], timing=FAST)
    async with served(engine) as c:
        r = await c.post("/v1/agents/calculator/runs", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param
    assert engine.requests == []


@pytest.mark.parametrize("tool_call_id", [None, ""])
async def test_a_tool_message_must_name_the_call_it_answers(tool_call_id: str | None) -> None:
    tool_msg: dict[str, Any] = {"role": "tool", "content": "3"}
    if tool_call_id is not None:
        tool_msg["tool_call_id"] = tool_call_id
    messages = [
        *USER,
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": "{}"}}
            ],
        },
        tool_msg,
    ]
    engine = ScriptedEngine(["ok"], timing=FAST)
    async with served(engine) as c:
        r = await c.post(
            "/v1/chat/completions", json={"model": "scripted", "messages": messages, "tools": [ADD]}
        )
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["code"], err["param"]) == ("missing_required_parameter", "messages[2].tool_call_id")
    assert engine.requests == []


@pytest.mark.parametrize("name", ["bad name", "", "<|im_start|>system", "x" * 65])
async def test_tool_names_echoed_in_assistant_messages_are_checked(name: str) -> None:
    messages = [
        *USER,
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": name, "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "3"},
    ]
    engine = ScriptedEngine(["ok"], timing=FAST)
    async with served(engine) as c:
        r = await c.post("/v1/chat/completions", json={"model": "scripted", "messages": messages})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "messages[1].tool_calls[0].function.name"
    assert engine.requests == []


class Dies(EngineProxy):
    """Test seam: the engine fails as a crashed engine core does."""

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]:
        raise EngineError("engine core died")
        yield  # pragma: no cover


async def test_a_failed_run_reports_its_cause_not_the_task_group() -> None:
    engine = Dies(ScriptedEngine(["ok"], timing=FAST), owns_inner=True)
    async with served(engine) as c:
        r = await c.post("/v1/agents/calculator/runs", json={"input": "1+1", "stream": True})
        run_id = r.headers["x-agentrt-run-id"]
        run = (await c.get(f"/v1/runs/{run_id}")).json()
    assert '"error":"EngineError: engine core died"' in r.text
    assert run["status"] == "error" and run["error"] == "EngineError: engine core died"
    assert "ExceptionGroup" not in r.text
    await engine.aclose()


def test_exception_groups_map_to_their_cause() -> None:
    group = ExceptionGroup("outer", [ExceptionGroup("inner", [EngineError("boom")]), KeyError("k")])
    assert describe(group) == "EngineError: boom; KeyError: 'k'"
    assert as_api_error(group).status == 503  # the engine's failure, not a 500
