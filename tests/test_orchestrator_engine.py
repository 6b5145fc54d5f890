"""The agent loop on the real embedded engine: real tools and tool errors.

Prompt reuse (token log, split prefill) is tested exactly in ``test_codesign_engine.py``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncGenerator

import anyio
import pytest

from agentrt import Agent, RunResult, Switches, ToolError, tool
from agentrt.engine import (
    Engine,
    EngineProxy,
    GenerateRequest,
    RegexConstraint,
    SamplingOptions,
    TokenDelta,
)
from agentrt.tools import calculator

pytestmark = [pytest.mark.anyio, pytest.mark.engine]

SAMPLING = SamplingOptions(max_tokens=40)


class FirstCallForced(EngineProxy):
    """Test seam: the real engine, with the first response constrained to a given call.

    The model still decodes every token; the regex only decides which call it writes,
    so the run exercises the exact error path we want.
    """

    def __init__(self, inner: Engine, call_json: str) -> None:
        super().__init__(inner)
        self.pattern = re.escape(f"<tool_call>\n{call_json}\n</tool_call>")
        self.calls = 0

    def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]:
        self.calls += 1
        if self.calls == 1:
            request = dataclasses.replace(request, constraint=RegexConstraint(self.pattern))
        return self.inner.generate(request)


async def test_agent_with_a_real_tool_completes(vllm_engine: Engine) -> None:
    agent = Agent(
        instructions="You are a calculator. Use the tool, then answer briefly.",
        tools=[calculator],
        engine=vllm_engine,
        tool_choice="required",
        sampling=SAMPLING,
        max_iterations=3,
    )
    result = await agent.run("What is 12 * 7?")
    assert result.status in ("completed", "max_iterations")
    first_span = result.iterations[0].tools[0]
    assert first_span.name == "calculator"
    assert [m.role for m in result.messages[:4]] == ["system", "user", "assistant", "tool"]
    if result.status == "completed":
        assert result.ftr_s is not None and 0 < result.ftr_s <= result.e2e_s


@tool
def divide(a: float, b: float) -> float:
    """Divide a by b.

    Args:
        a: numerator
        b: denominator
    """
    return a / b


@tool(timeout_s=0.3)
async def slow_lookup(key: str) -> str:
    """Look a key up in a slow store.

    Args:
        key: what to look up
    """
    await anyio.sleep(30)
    return "never"


@pytest.mark.parametrize(
    ("tools", "call", "reason"),
    [
        ([divide], '{"name": "divide", "arguments": {"a": "ten", "b": 2}}', "invalid_arguments"),
        ([divide], '{"name": "divide", "arguments": {"a": 1, "b": 0}}', "exception"),
        ([slow_lookup], '{"name": "slow_lookup", "arguments": {"key": "k"}}', "timeout"),
        ([divide], '{"name": "multiply", "arguments": {"a": 1}}', "unknown_tool"),
    ],
)
async def test_tool_errors_reach_the_model_and_the_run_survives(
    vllm_engine: Engine, tools: list[object], call: str, reason: str
) -> None:
    engine = FirstCallForced(vllm_engine, call)
    agent = Agent(
        instructions="Use tools.",
        tools=tools,
        engine=engine,
        sampling=SAMPLING,  # type: ignore[arg-type]
        max_iterations=2,
        constrain_calls=False,
        switches=Switches(),
    )
    result: RunResult = await agent.run("Go.")
    span = result.iterations[0].tools[0]
    assert isinstance(span.result, ToolError) and span.result.reason == reason
    tool_msg = result.messages[3]
    assert tool_msg.role == "tool" and tool_msg.content.startswith(f"Error ({reason})")
    assert len(result.iterations) == 2  # the model was asked again, with the error in its prompt
