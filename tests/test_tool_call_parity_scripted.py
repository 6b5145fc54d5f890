"""Repeated calls end the response; a call cut by ``max_tokens`` is a partial call.

On ScriptedEngine (one token per byte), through both paths: ``/v1/chat/completions``
(streamed and not) and the SDK's agent loop.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from agentrt import (
    Agent,
    RepeatedCallCut,
    RunEvent,
    SamplingOptions,
    ToolCallTruncated,
    ToolFinished,
    tool,
)
from agentrt.engine import ScriptedEngine, TimingModel
from agentrt.server import ServerConfig, create_app, running_server
from agentrt.testing import run_virtual

pytestmark = pytest.mark.anyio

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
USER = [{"role": "user", "content": "What is 1 + 2?"}]
FAST = TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0005)


def call(name: str, args: dict[str, Any]) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


# The same call twice (keys in another order), then a different one.
FIRST = call("add", {"a": 1, "b": 2})
REPEAT_JSON = json.dumps({"name": "add", "arguments": {"b": 2, "a": 1}})
REPEATING = "\n".join(
    [FIRST, "<tool_call>\n" + REPEAT_JSON + "\n</tool_call>", call("add", {"a": 3, "b": 4})]
)
# Decoding stops with the token that closes the repeat's JSON.
TOKENS_TO_REPEAT = len(f"{FIRST}\n<tool_call>\n{REPEAT_JSON}".encode())


@asynccontextmanager
async def served(engine: ScriptedEngine, **config: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine, agents=[], config=ServerConfig(**config))
    async with (
        running_server(app) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


async def post(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await client.post("/v1/chat/completions", json={"model": "scripted", **body})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def streamed(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    """A streamed completion reassembled as a client does: content, calls, finish, usage."""
    body = {"model": "scripted", "stream": True, "stream_options": {"include_usage": True}, **body}
    content, calls, finish, use = "", {}, None, None
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200, await r.aread()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            use = event.get("usage") or use
            for choice in event["choices"]:
                delta = choice["delta"]
                content += delta.get("content") or ""
                for tc in delta.get("tool_calls") or []:
                    slot = calls.setdefault(tc["index"], {"name": "", "arguments": ""})
                    fn = tc.get("function") or {}
                    slot["name"] += fn.get("name") or ""
                    slot["arguments"] += fn.get("arguments") or ""
                finish = choice.get("finish_reason") or finish
    return {
        "content": content,
        "calls": [calls[i] for i in sorted(calls)],
        "finish": finish,
        "usage": use,
    }


# -- REST: repeated calls ---------------------------------------------------------------


async def test_a_repeated_call_ends_the_completion_before_it() -> None:
    engine = ScriptedEngine([REPEATING], timing=FAST)
    async with served(engine) as c:
        body = await post(c, messages=USER, tools=[ADD], tool_choice="required")
    choice = body["choices"][0]
    assert [tc["function"]["name"] for tc in choice["message"]["tool_calls"]] == ["add"]
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "a": 1,
        "b": 2,
    }
    assert choice["finish_reason"] == "tool_calls"
    assert body["usage"]["completion_tokens"] == TOKENS_TO_REPEAT
    await engine.aclose()


async def test_a_streamed_repeat_ends_the_stream_with_the_same_answer() -> None:
    engine = ScriptedEngine([REPEATING], timing=FAST)
    async with served(engine) as c:
        got = await streamed(c, messages=USER, tools=[ADD], tool_choice="required")
    assert got["calls"] == [{"name": "add", "arguments": '{"a": 1, "b": 2}'}]
    assert got["content"] == ""
    assert got["finish"] == "tool_calls"
    assert got["usage"]["completion_tokens"] == TOKENS_TO_REPEAT
    await engine.aclose()


async def test_repeats_cut_are_counted_in_metrics() -> None:
    engine = ScriptedEngine([REPEATING, FIRST], timing=FAST)
    async with served(engine) as c:
        await post(c, messages=USER, tools=[ADD], tool_choice="required")
        await post(c, messages=USER, tools=[ADD], tool_choice="required")
        text = (await c.get("/metrics")).text
    assert "agentrt_chat_repeated_calls_cut_total 1.0" in text
    await engine.aclose()


async def test_different_calls_to_one_tool_are_all_returned() -> None:
    reply = "\n".join([FIRST, call("add", {"a": 1, "b": 3})])
    engine = ScriptedEngine([reply], timing=FAST)
    async with served(engine) as c:
        body = await post(c, messages=USER, tools=[ADD], tool_choice="required")
    args = [
        json.loads(tc["function"]["arguments"])
        for tc in body["choices"][0]["message"]["tool_calls"]
    ]
    assert args == [{"a": 1, "b": 2}, {"a": 1, "b": 3}]
    await engine.aclose()


async def test_keeping_repeats_returns_every_call() -> None:
    engine = ScriptedEngine([REPEATING], timing=FAST)
    async with served(engine, cut_repeated_calls=False) as c:
        body = await post(c, messages=USER, tools=[ADD], tool_choice="required")
    assert len(body["choices"][0]["message"]["tool_calls"]) == 3
    assert body["usage"]["completion_tokens"] == len(REPEATING.encode()) + 1  # + <|im_end|>
    await engine.aclose()


# -- REST: a call cut by max_tokens ------------------------------------------------------

CUT = 48  # inside the arguments of FIRST
PARTIAL_ARGS = FIRST[:CUT].split('"arguments": ', 1)[1]


async def test_a_call_cut_by_max_tokens_is_a_partial_call() -> None:
    engine = ScriptedEngine([FIRST], timing=FAST)
    async with served(engine) as c:
        body = await post(c, messages=USER, tools=[ADD], max_tokens=CUT)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] is None
    (tc,) = choice["message"]["tool_calls"]
    assert tc["function"] == {"name": "add", "arguments": PARTIAL_ARGS}
    await engine.aclose()


async def test_a_streamed_call_cut_by_max_tokens_is_the_same_partial_call() -> None:
    engine = ScriptedEngine([FIRST], timing=FAST)
    async with served(engine) as c:
        got = await streamed(c, messages=USER, tools=[ADD], max_tokens=CUT)
    assert got["calls"] == [{"name": "add", "arguments": PARTIAL_ARGS}]
    assert got["content"] == ""
    assert got["finish"] == "length"
    await engine.aclose()


@pytest.mark.parametrize("cut", [12, 14, 20])
async def test_a_call_cut_before_its_name_leaves_no_markup_in_content(cut: int) -> None:
    engine = ScriptedEngine([f"Let me add.\n{FIRST}"] * 2, timing=FAST)
    async with served(engine) as c:
        body = await post(c, messages=USER, tools=[ADD], max_tokens=len("Let me add.\n") + cut)
        got = await streamed(c, messages=USER, tools=[ADD], max_tokens=len("Let me add.\n") + cut)
    message = body["choices"][0]["message"]
    assert message["content"] == got["content"] == "Let me add."
    assert message["tool_calls"] is None and got["calls"] == []
    assert body["choices"][0]["finish_reason"] == got["finish"] == "length"
    await engine.aclose()


# -- the SDK's loop ---------------------------------------------------------------------

ran: list[dict[str, int]] = []


@tool
async def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first
        b: the second
    """
    ran.append({"a": a, "b": b})
    return a + b


prompts: list[str] = []


def run_agent(replies: list[str], **agent: Any) -> tuple[list[RunEvent], Any]:
    """Run the agent on ``replies``; the prompts the engine got go to ``prompts``."""
    ran.clear()
    prompts.clear()

    async def main() -> tuple[list[RunEvent], Any]:
        engine = ScriptedEngine(replies, timing=FAST)
        a = Agent(tools=[add], engine=engine, constrain_calls=False, **agent)
        events = [e async for e in a.stream("Add.")]
        prompts.extend(engine.tokenizer.decode(r.prompt) for r in engine.requests)
        await engine.aclose()
        return events, events[-1].result  # type: ignore[union-attr]

    return run_virtual(main)


def test_the_agent_loop_runs_a_repeated_call_once_and_stops_decoding_there() -> None:
    events, result = run_agent([REPEATING, "3"])
    assert ran == [{"a": 1, "b": 2}]
    (cut,) = [e for e in events if isinstance(e, RepeatedCallCut)]
    assert cut.name == "add" and cut.output_tokens == TOKENS_TO_REPEAT
    assert result.status == "completed" and result.final_text == "3"
    assert result.iterations[0].output_tokens == TOKENS_TO_REPEAT
    # The next prompt holds the response as the template writes it: one call, closed.
    answer = prompts[-1].split("<|im_start|>assistant\n")[1]
    assert answer.startswith(f"{FIRST}<|im_end|>")


def test_the_agent_loop_can_keep_repeats() -> None:
    _, result = run_agent([REPEATING, "3"], cut_repeated_calls=False)
    assert ran == [{"a": 1, "b": 2}, {"a": 1, "b": 2}, {"a": 3, "b": 4}]
    assert result.status == "completed"


def test_the_agent_loop_never_runs_a_truncated_call_and_ends_naming_max_tokens() -> None:
    events, result = run_agent([FIRST, "3"], sampling=SamplingOptions(max_tokens=CUT))
    assert ran == []
    assert not [e for e in events if isinstance(e, ToolFinished)]
    (cut,) = [e for e in events if isinstance(e, ToolCallTruncated)]
    assert (cut.name, cut.arguments_text) == ("add", PARTIAL_ARGS)
    assert result.status == "error"
    assert f"max_tokens ({CUT})" in result.error and "'add'" in result.error
    assert len(result.iterations) == 1


def test_complete_calls_before_a_truncated_one_still_run() -> None:
    reply = "\n".join([FIRST, call("add", {"a": 5, "b": 6})])
    _, result = run_agent([reply, "3"], sampling=SamplingOptions(max_tokens=len(FIRST) + 30))
    assert ran == [{"a": 1, "b": 2}]
    assert result.status == "error" and "max_tokens" in result.error
