"""An agent on the real embedded engine calls tools mounted from an MCP server over stdio."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agentrt import Agent, SamplingOptions, ToolError, ToolOk
from agentrt.engine import Engine
from agentrt.tools import mcp_stdio_tools

pytestmark = [pytest.mark.anyio, pytest.mark.engine]

FIXTURE = str(Path(__file__).with_name("mcp_server_fixture.py"))


async def test_agent_calls_an_mcp_tool_on_the_real_engine(vllm_engine: Engine) -> None:
    async with mcp_stdio_tools(sys.executable, [FIXTURE]) as tools:
        add = next(t for t in tools if t.name == "add")
        agent = Agent(
            instructions="Add numbers with the add tool.",
            tools=[add],
            engine=vllm_engine,
            tool_choice="add",
            max_iterations=2,
            sampling=SamplingOptions(max_tokens=40),
        )
        result = await agent.run("What is 2 + 3?")
    span = result.iterations[0].tools[0]
    assert span.name == "add"
    assert isinstance(span.result, ToolOk)
    args = result.messages[2].tool_calls[0]
    import json

    a, b = json.loads(args.arguments).values()
    assert span.result.content.strip() == str(a + b)


async def test_an_mcp_server_dying_mid_call_is_a_tool_error_the_run_survives(
    vllm_engine: Engine,
) -> None:
    async with mcp_stdio_tools(sys.executable, [FIXTURE]) as tools:
        crash = next(t for t in tools if t.name == "crash")
        agent = Agent(
            instructions="Call crash.",
            tools=[crash],
            engine=vllm_engine,
            tool_choice="crash",
            max_iterations=2,
            sampling=SamplingOptions(max_tokens=24),
        )
        result = await agent.run("Go.")
    span = result.iterations[0].tools[0]
    assert isinstance(span.result, ToolError) and span.result.reason == "exception"
    assert len(result.iterations) == 2
