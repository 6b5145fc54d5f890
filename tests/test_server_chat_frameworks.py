"""Unmodified frameworks against ``agentrt serve`` on ScriptedEngine (issue 11): each runs
a two-round tool loop, streaming and not, and the second request's prompt extends the
first request's prompt plus the tokens the model generated, exactly.

The scripted model writes its call the way models do and clients never echo: text
before the call, compact JSON with its own key order. pydantic-ai sends arguments back
compacted, the Agents SDK as received; both must hit the remembered tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import openai
import pytest
from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from agentrt.engine import ScriptContext, ScriptedEngine, TimingModel
from agentrt.server import create_app, running_server

pytestmark = pytest.mark.anyio

FAST = TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0005)
CALL = 'Let me add.  \n<tool_call>\n{"name":"add","arguments":{"b":2,"a":1}}\n</tool_call>'
ANSWER = "1 + 2 = 3."
QUESTION = "What is 1 + 2?"


class Model:
    """The scripted model: a call, then (after a tool result) the answer; keeps its replies."""

    def __init__(self) -> None:
        self.replies: list[str] = []

    def __call__(self, ctx: ScriptContext) -> str:
        last_user = ctx.prompt_text.rsplit("<|im_start|>user\n", 1)[-1]
        reply = ANSWER if last_user.startswith("<tool_response>") else CALL
        self.replies.append(reply)
        return reply


@asynccontextmanager
async def served() -> AsyncIterator[tuple[str, ScriptedEngine, Model]]:
    model = Model()
    engine = ScriptedEngine(model, timing=FAST)
    async with running_server(create_app(engine, agents=[])) as url:
        yield url + "/v1", engine, model
    await engine.aclose()


def assert_second_extends_first(engine: ScriptedEngine, model: Model) -> None:
    chats = [r for r in engine.requests if r.forced_output is None]
    assert len(chats) == 2 and model.replies == [CALL, ANSWER]
    tok = engine.tokenizer
    generated = (*tok.encode(CALL), tok.im_end_id, *tok.turn_close)
    expected = chats[0].prompt + generated
    assert chats[1].prompt[: len(expected)] == expected
    assert chats[1].session == chats[0].session


async def _drain(_ctx: Any, events: AsyncIterable[Any]) -> None:
    async for _ in events:
        pass


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_agents_sdk(stream: bool) -> None:
    set_tracing_disabled(True)
    async with (
        served() as (url, engine, model),
        openai.AsyncOpenAI(base_url=url, api_key="none") as client,
    ):
        agent = Agent(
            name="calc",
            instructions="Add numbers with the tool.",
            tools=[function_tool(add)],
            model=OpenAIChatCompletionsModel(model="scripted", openai_client=client),
        )
        if stream:
            run = Runner.run_streamed(agent, QUESTION)
            async for _ in run.stream_events():
                pass
            output = run.final_output
        else:
            output = (await Runner.run(agent, QUESTION)).final_output
    assert output == ANSWER
    assert_second_extends_first(engine, model)


@pytest.mark.parametrize("stream", [False, True])
async def test_pydantic_ai(stream: bool) -> None:
    async with (
        served() as (url, engine, model),
        openai.AsyncOpenAI(base_url=url, api_key="none") as client,
    ):
        provider = OpenAIProvider(openai_client=client)
        agent = PydanticAgent(
            OpenAIChatModel("scripted", provider=provider),
            instructions="Add numbers with the tool.",
            tools=[add],
        )
        # Streamed: an event handler makes pydantic-ai stream every model request (its
        # ``run_stream`` would end the run at the first text, before the tool runs).
        handler = _drain if stream else None
        output = (await agent.run(QUESTION, event_stream_handler=handler)).output
    assert output == ANSWER
    assert_second_extends_first(engine, model)


@pytest.mark.parametrize("stream", [False, True])
async def test_langchain_openai(stream: bool) -> None:
    async with served() as (url, engine, model), httpx.AsyncClient() as http:
        llm = ChatOpenAI(
            model="scripted",
            base_url=url,
            api_key="none",  # type: ignore[arg-type]
            streaming=stream,
            http_async_client=http,
        )
        bound = llm.bind_tools([tool(add)])
        history: list[BaseMessage] = [HumanMessage(QUESTION)]
        first = await bound.ainvoke(history)
        history.append(first)
        for call in first.tool_calls:
            history.append(ToolMessage(str(add(**call["args"])), tool_call_id=call["id"]))
        second = await bound.ainvoke(history)
    assert second.content == ANSWER
    assert_second_extends_first(engine, model)
