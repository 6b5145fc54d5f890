"""``/v1/responses`` on the real engine, driven by the OpenAI Agents SDK with its default
model class (``OpenAIResponsesModel``): a client-side function tool round trip, and a
server-side built-in tool the server runs inside the response. Small token budgets:
the CPU is slow; ``tool_choice="required"`` makes the tiny model's first step a call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from agentrt.engine import Engine
from agentrt.server import ServerConfig, create_app, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.engine]


@pytest.fixture(scope="module")
async def base_url(vllm_engine: Engine) -> AsyncIterator[str]:
    app = create_app(vllm_engine, agents=[], config=ServerConfig(hosted_tools=("calculator",)))
    async with running_server(app) as url:
        yield url


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    c = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)
    yield c
    await c.close()


def _sdk() -> Any:
    agents = pytest.importorskip("agents")
    agents.set_tracing_disabled(True)  # nothing may leave the machine
    return agents


def _agent(sdk: Any, client: openai.AsyncOpenAI, model: str, instructions: str, tool: Any) -> Any:
    """An Agents SDK agent on its default model class, against our server."""
    return sdk.Agent(
        name="agent",
        instructions=instructions,
        tools=[tool],
        model=sdk.OpenAIResponsesModel(model=model, openai_client=client),
        model_settings=sdk.ModelSettings(tool_choice="required", max_tokens=160, temperature=0.0),
    )


async def test_agents_sdk_default_model_runs_a_function_tool(client: openai.AsyncOpenAI) -> None:
    sdk = _sdk()
    model_name = (await client.models.list()).data[0].id
    calls: list[tuple[int, int]] = []

    @sdk.function_tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        calls.append((a, b))
        return a + b

    agent = _agent(sdk, client, model_name, "Use the add tool, then give the result.", add)
    assert isinstance(agent.model, sdk.OpenAIResponsesModel)
    try:
        result = await sdk.Runner.run(agent, "What is 2 + 3?", max_turns=3)
    except sdk.exceptions.MaxTurnsExceeded as exc:  # the tiny model may keep calling
        result = exc.run_data
    assert calls, "the SDK never ran the function tool the server asked for"
    # The SDK sent the call's output back (full history, no previous_response_id) and
    # the server answered that second request.
    assert result is not None and len(result.raw_responses) >= 2
    kinds = [item.type for item in result.raw_responses[0].output]
    assert "function_call" in kinds


async def test_agents_sdk_hosted_builtin_tool_runs_in_the_server(
    client: openai.AsyncOpenAI,
) -> None:
    sdk = _sdk()
    model_name = (await client.models.list()).data[0].id
    hosted = sdk.HostedMCPTool(
        tool_config={"type": "mcp", "server_label": "calculator", "require_approval": "never"}
    )
    agent = _agent(sdk, client, model_name, "Call the calculator, then state the result.", hosted)
    try:
        result = await sdk.Runner.run(agent, "What is 6 * 7?", max_turns=2)
    except sdk.exceptions.MaxTurnsExceeded as exc:
        result = exc.run_data
    assert result is not None and result.raw_responses
    first = result.raw_responses[0]
    mcp = [item for item in first.output if item.type == "mcp_call"]
    assert mcp, [item.type for item in first.output]
    # The server ran the calculator inside the response and reported its output.
    assert mcp[0].server_label == "calculator" and mcp[0].output
    assert first.usage is not None and first.usage.input_tokens > 0
