"""Each tool format end to end on ScriptedEngine: an agent run and a chat completion whose
model writes calls that way get the call, run it, and read its result in that format."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from agentrt import Agent, Switches, tool
from agentrt.engine import (
    TOOL_FORMAT_NAMES,
    ByteCodec,
    ChatTokenizer,
    ScriptedEngine,
    TimingModel,
    ToolCallConstraint,
    ToolFormatName,
)
from agentrt.server import ServerConfig, create_app, running_server
from agentrt.server._cli import add_arguments, build
from agentrt.server._registry import AgentRegistry

pytestmark = pytest.mark.anyio
FAST = TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0005)

# What a model of each family writes when it calls add(2, 3).
WRITTEN: dict[str, str] = {
    "hermes": '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>',
    "json": 'I will add.\n```json\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n```',
    "llama3_json": '{"name": "add", "parameters": {"a": 2, "b": 3}}',
    "mistral": '[TOOL_CALLS][{"name": "add", "arguments": {"a": 2, "b": 3}}]',
}
# How the call is rendered back into the conversation.
RENDERED_CALL: dict[str, str] = {
    "hermes": '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>',
    "json": '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>',
    "llama3_json": '{"name": "add", "parameters": {"a": 2, "b": 3}}',
    "mistral": '[TOOL_CALLS][{"name": "add", "arguments": {"a": 2, "b": 3}}]',
}
# How the result comes back (the call id follows in Mistral's).
RESULT: dict[str, str] = {
    "hermes": "<|im_start|>user\n<tool_response>\n5\n</tool_response><|im_end|>\n",
    "json": "<|im_start|>user\n<tool_response>\n5\n</tool_response><|im_end|>\n",
    "llama3_json": "<|im_start|>ipython\n5<|im_end|>\n",
    "mistral": '<|im_start|>tool\n[TOOL_RESULTS]{"content": "5", "call_id": "',
}


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def run_agent(
    fmt: ToolFormatName, *, on_engine: bool = False, switches: Switches | None = None
) -> tuple[ScriptedEngine, Agent]:
    tokenizer = ChatTokenizer(ByteCodec(), fmt if on_engine else "hermes")
    engine = ScriptedEngine([WRITTEN[fmt], "The sum is 5."], timing=FAST, tokenizer=tokenizer)
    agent = Agent(
        tools=[add],
        engine=engine,
        tool_format=None if on_engine else fmt,
        # No split prefill: its extra one-token request would sit among the LLM calls.
        switches=switches or Switches(split_prefill=False),
    )
    return engine, agent


@pytest.mark.parametrize("fmt", TOOL_FORMAT_NAMES)
@pytest.mark.parametrize("on_engine", [False, True], ids=["agent_override", "from_model"])
async def test_an_agent_run_in_each_format_calls_the_tool_and_reads_its_result(
    fmt: ToolFormatName, on_engine: bool
) -> None:
    engine, agent = await run_agent(fmt, on_engine=on_engine)
    result = await agent.run("What is 2 + 3?")
    await engine.aclose()
    assert result.status == "completed" and result.final_text == "The sum is 5."
    (span,) = result.iterations[0].tools
    assert (span.name, span.result.content) == ("add", "5")
    # Split prefills are engine requests too (forced output): only the two completions.
    first, second = [r for r in engine.requests if r.forced_output is None]
    assert isinstance(first.constraint, ToolCallConstraint) and first.constraint.format == fmt
    tok = engine.tokenizer
    generated = tok.encode(WRITTEN[fmt])
    # The model's tokens are kept verbatim, then its turn is closed and the result added.
    assert second.prompt[: len(first.prompt) + len(generated)] == (*first.prompt, *generated)
    tail = tok.decode(second.prompt[len(first.prompt) + len(generated) :])
    assert tail.startswith("<|im_end|>\n" + RESULT[fmt])
    assert tail.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("fmt", TOOL_FORMAT_NAMES)
async def test_a_baseline_run_re_renders_the_call_and_result_in_the_format(
    fmt: ToolFormatName,
) -> None:
    engine, agent = await run_agent(fmt, switches=Switches.baseline())
    result = await agent.run("What is 2 + 3?")
    await engine.aclose()
    assert result.final_text == "The sum is 5."
    text = engine.tokenizer.decode(engine.requests[1].prompt)
    assert f"{RENDERED_CALL[fmt]}<|im_end|>\n{RESULT[fmt]}" in text
    assert result.messages[2].tool_calls[0].name == "add"
    assert json.loads(result.messages[2].tool_calls[0].arguments) == {"a": 2, "b": 3}


@asynccontextmanager
async def served(engine: ScriptedEngine, fmt: ToolFormatName) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine, agents=[], config=ServerConfig(tool_format=fmt))
    async with (
        running_server(app) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


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


@pytest.mark.parametrize("fmt", TOOL_FORMAT_NAMES)
async def test_the_rest_server_in_each_format_returns_calls_and_renders_results(
    fmt: ToolFormatName,
) -> None:
    engine = ScriptedEngine([WRITTEN[fmt], "5."], timing=FAST)
    user = {"role": "user", "content": "What is 2 + 3?"}
    async with served(engine, fmt) as client:
        r = await client.post(
            "/v1/chat/completions", json={"model": "scripted", "messages": [user], "tools": [ADD]}
        )
        choice = r.json()["choices"][0]
        (call,) = choice["message"]["tool_calls"]
        assert choice["finish_reason"] == "tool_calls"
        assert call["function"]["name"] == "add"
        assert json.loads(call["function"]["arguments"]) == {"a": 2, "b": 3}
        result = {"role": "tool", "tool_call_id": call["id"], "content": "5"}
        messages = [user, choice["message"], result]
        r2 = await client.post(
            "/v1/chat/completions", json={"model": "scripted", "messages": messages, "tools": [ADD]}
        )
        assert r2.json()["choices"][0]["message"]["content"] == "5."
    await engine.aclose()
    # Split prefills are engine requests too (forced output): only the two completions.
    first, second = [r for r in engine.requests if r.forced_output is None]
    assert isinstance(first.constraint, ToolCallConstraint) and first.constraint.format == fmt
    text = engine.tokenizer.decode(second.prompt)
    # The echoed turn goes back as the model wrote it (the server remembers its tokens).
    assert f"{WRITTEN[fmt]}<|im_end|>\n{RESULT[fmt]}" in text


def test_agentrt_serve_takes_a_tool_format_for_its_engine_and_its_agents() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    agents, config = build(parser.parse_args(["--tool-format", "mistral"]))
    assert config.tool_format == "mistral"
    assert build(parser.parse_args([]))[1].tool_format is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--tool-format", "xml"])
    engine = ScriptedEngine(["ok"])
    registry = AgentRegistry([*agents, Agent(name="own", tool_format="json")], engine, "mistral")
    assert registry.get(agents[0].name).tool_format == "mistral"
    assert registry.get("own").tool_format == "json"
