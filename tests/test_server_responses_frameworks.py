"""``/v1/responses`` on ScriptedEngine through the frameworks' own Responses clients:
the OpenAI Agents SDK's default model, LangChain ``ChatOpenAI(use_responses_api=True)``
and pydantic-ai's ``OpenAIResponsesModel`` — each running a function tool round trip."""

from __future__ import annotations

import httpx
import openai
import pytest
from test_server_chat_scripted import ADD as CHAT_ADD
from test_server_responses_scripted import reply, served

from agentrt.engine import ScriptedEngine, TimingModel

pytestmark = pytest.mark.anyio


def _engine() -> ScriptedEngine:
    return ScriptedEngine(reply, timing=TimingModel(0.0, 0.0005))


@pytest.mark.parametrize("streamed", [False, True])
async def test_agents_sdk_default_model(streamed: bool) -> None:
    sdk = pytest.importorskip("agents")
    sdk.set_tracing_disabled(True)
    seen: list[int] = []

    @sdk.function_tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        seen.append(a + b)
        return a + b

    async with served(_engine()) as (url, _):
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        agent = sdk.Agent(
            name="adder",
            tools=[add],
            model=sdk.OpenAIResponsesModel(model="scripted", openai_client=client),
        )
        if streamed:
            result = sdk.Runner.run_streamed(agent, "add 1 and 2", max_turns=3)
            kinds = {ev.type async for ev in result.stream_events()}
            assert "raw_response_event" in kinds
        else:
            result = await sdk.Runner.run(agent, "add 1 and 2", max_turns=3)
        await client.close()
    assert seen == [3]
    assert result.final_output == "Result: 3"


async def test_langchain_responses_api() -> None:
    lc = pytest.importorskip("langchain_openai")
    from langchain_core.messages import HumanMessage, ToolMessage

    async with served(_engine()) as (url, _), httpx.AsyncClient() as http:
        llm = lc.ChatOpenAI(
            model="scripted",
            base_url=url + "/v1",
            api_key="x",
            use_responses_api=True,
            http_async_client=http,
        )
        bound = llm.bind_tools([CHAT_ADD])
        first = await bound.ainvoke([HumanMessage("add 1 and 2")])
        assert first.tool_calls and first.tool_calls[0]["args"] == {"a": 1, "b": 2}
        call_id = first.tool_calls[0]["id"]
        second = await bound.ainvoke(
            [HumanMessage("add 1 and 2"), first, ToolMessage("3", tool_call_id=call_id)]
        )
    assert second.text == "Result: 3"


async def test_pydantic_ai_responses_model() -> None:
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    async with (
        served(_engine()) as (url, _),
        openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client,
    ):
        model = OpenAIResponsesModel("scripted", provider=OpenAIProvider(openai_client=client))
        agent = Agent(model)
        seen: list[int] = []

        @agent.tool_plain
        def add(a: int, b: int) -> int:
            """Add two integers."""
            seen.append(a + b)
            return a + b

        result = await agent.run("add 1 and 2")
    assert seen == [3]
    assert result.output == "Result: 3"
