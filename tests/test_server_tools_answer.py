"""Tools with ``response_format`` on ``/v1/chat/completions`` (issue 11.4), on ScriptedEngine:
with tool_choice auto the response is a tool call or a JSON answer in the schema (one
grammar reaches the engine), streamed and not; unmodified frameworks' structured outputs
(the Agents SDK's ``output_type``, pydantic-ai's ``NativeOutput``) run a tool round and
end with the typed answer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai
import pytest
from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from pydantic import BaseModel
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai import NativeOutput
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from agentrt.engine import (
    GenerateRequest,
    JsonSchemaConstraint,
    ScriptContext,
    ScriptedEngine,
    TimingModel,
    ToolCallConstraint,
)
from agentrt.server import create_app, running_server

pytestmark = pytest.mark.anyio

FAST = TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0005)
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}},
    "required": ["answer"],
    "additionalProperties": False,
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
CALL = '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>'
JSON_ANSWER = '{"answer": 3}'
FORMAT = {"type": "json_schema", "json_schema": {"name": "sum", "schema": SCHEMA, "strict": True}}


def two_rounds(ctx: ScriptContext) -> str:
    """A call first; after the tool's result, the answer as JSON."""
    last_user = ctx.prompt_text.rsplit("<|im_start|>user\n", 1)[-1]
    return JSON_ANSWER if last_user.startswith("<tool_response>") else CALL


def chats(engine: ScriptedEngine) -> list[GenerateRequest]:
    """The chat requests the engine got (split prefills after a call left out)."""
    return [r for r in engine.requests if r.forced_output is None]


@asynccontextmanager
async def client_for(engine: ScriptedEngine) -> AsyncIterator[openai.AsyncOpenAI]:
    async with (
        running_server(create_app(engine, agents=[])) as url,
        openai.AsyncOpenAI(base_url=url + "/v1", api_key="none") as client,
    ):
        yield client
    await engine.aclose()


async def ask(client: openai.AsyncOpenAI, stream: bool, **extra: Any) -> tuple[Any, str, str]:
    """(tool calls as [(name, arguments)], content, finish_reason) of one request."""
    body: dict[str, Any] = {
        "model": "scripted",
        "messages": [{"role": "user", "content": "What is 1 + 2?"}],
        "tools": [ADD],
        "response_format": FORMAT,
        **extra,
    }
    if not stream:
        r = await client.chat.completions.create(**body)
        msg = r.choices[0].message
        calls = [(c.function.name, c.function.arguments) for c in msg.tool_calls or []]
        return calls, msg.content or "", r.choices[0].finish_reason
    calls_by_index: dict[int, list[str]] = {}
    content, finish = "", ""
    async for chunk in await client.chat.completions.create(**body, stream=True):
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for c in choice.delta.tool_calls or []:
                slot = calls_by_index.setdefault(c.index, ["", ""])
                slot[0] += (c.function and c.function.name) or ""
                slot[1] += (c.function and c.function.arguments) or ""
            finish = choice.finish_reason or finish
    return [tuple(v) for v in calls_by_index.values()], content, finish


@pytest.mark.parametrize("stream", [False, True])
async def test_auto_with_response_format_returns_a_call(stream: bool) -> None:
    engine = ScriptedEngine([CALL], timing=FAST)
    async with client_for(engine) as client:
        calls, content, finish = await ask(client, stream)
    assert [(n, json.loads(a)) for n, a in calls] == [("add", {"a": 1, "b": 2})]
    assert (content, finish) == ("", "tool_calls")
    c = engine.requests[0].constraint
    assert isinstance(c, ToolCallConstraint)
    assert (c.required, c.answer_schema, [t.name for t in c.tools]) == (False, SCHEMA, ["add"])


@pytest.mark.parametrize("stream", [False, True])
async def test_auto_with_response_format_returns_the_answer(stream: bool) -> None:
    engine = ScriptedEngine([JSON_ANSWER], timing=FAST)
    async with client_for(engine) as client:
        calls, content, finish = await ask(client, stream, tool_choice="auto")
    assert (calls, json.loads(content), finish) == ([], {"answer": 3}, "stop")
    c = engine.requests[0].constraint
    assert isinstance(c, ToolCallConstraint) and c.answer_schema == SCHEMA


async def test_json_object_beside_tools_asks_for_an_object() -> None:
    engine = ScriptedEngine(["{}"], timing=FAST)
    async with client_for(engine) as client:
        await ask(client, False, response_format={"type": "json_object"})
    c = engine.requests[0].constraint
    assert isinstance(c, ToolCallConstraint) and c.answer_schema == {"type": "object"}


async def test_required_and_none_keep_one_branch() -> None:
    """``required``: calls only (no answer to shape); ``none``: the answer's schema only."""
    engine = ScriptedEngine([CALL, JSON_ANSWER], timing=FAST)
    async with client_for(engine) as client:
        calls, _, finish = await ask(client, False, tool_choice="required")
        _, content, _ = await ask(client, False, tool_choice="none")
    assert (len(calls), finish, json.loads(content)) == (1, "tool_calls", {"answer": 3})
    forced, answer = (r.constraint for r in chats(engine))
    assert isinstance(forced, ToolCallConstraint) and forced.required
    assert forced.answer_schema is None
    assert answer == JsonSchemaConstraint(SCHEMA)


class Sum(BaseModel):
    answer: int


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@pytest.mark.parametrize("stream", [False, True])
async def test_agents_sdk_output_type_with_a_tool(stream: bool) -> None:
    set_tracing_disabled(True)
    engine = ScriptedEngine(two_rounds, timing=FAST)
    async with client_for(engine) as client:
        agent = Agent(
            name="calc",
            instructions="Add with the tool, answer as JSON.",
            tools=[function_tool(add)],
            output_type=Sum,
            model=OpenAIChatCompletionsModel(model="scripted", openai_client=client),
        )
        if stream:
            run = Runner.run_streamed(agent, "What is 1 + 2?")
            async for _ in run.stream_events():
                pass
            output = run.final_output
        else:
            output = (await Runner.run(agent, "What is 1 + 2?")).final_output
    assert output == Sum(answer=3)
    first, second = chats(engine)
    assert isinstance(first.constraint, ToolCallConstraint)
    assert first.constraint.answer_schema is not None
    assert "answer" in first.constraint.answer_schema["properties"]
    assert second.constraint == first.constraint


async def test_pydantic_ai_native_output_with_a_tool() -> None:
    engine = ScriptedEngine(two_rounds, timing=FAST)
    async with client_for(engine) as client:
        agent = PydanticAgent(
            OpenAIChatModel("scripted", provider=OpenAIProvider(openai_client=client)),
            instructions="Add with the tool, answer as JSON.",
            tools=[add],
            output_type=NativeOutput(Sum),
        )
        output = (await agent.run("What is 1 + 2?")).output
    assert output == Sum(answer=3)
    c = engine.requests[0].constraint
    assert isinstance(c, ToolCallConstraint) and c.answer_schema is not None
