"""Tool calls on the real engine through ``/v1/chat/completions``, as clients send them:
``parallel_tool_calls`` unset gives no repeated calls, and a call cut by ``max_tokens``
comes back as a partial call with ``finish_reason: "length"`` (issue 20)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from test_server_openai_engine import CALC

from agentrt.engine import Engine
from agentrt.server import create_app, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.engine]

QUESTIONS = [
    "What is 12 * 7?",
    "What is 345 + 678?",
    "How much is 2 to the power of 10?",
    "What is 1000 / 8?",
    "Compute 17 * 23 - 5.",
    "What is (4 + 6) * 3?",
]
HEAD = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "'


@pytest.fixture(scope="module")
async def client(vllm_engine: Engine) -> AsyncIterator[openai.AsyncOpenAI]:
    async with running_server(create_app(vllm_engine, agents=[])) as url:
        c = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        yield c
        await c.close()


async def answer(client: openai.AsyncOpenAI, stream: bool, **body: Any) -> dict[str, Any]:
    """One completion as content, calls, finish reason and output tokens (streamed or not)."""
    model = (await client.models.list()).data[0].id
    if not stream:
        r = await client.chat.completions.create(model=model, temperature=0, **body)
        m = r.choices[0].message
        calls = [(c.function.name, c.function.arguments) for c in m.tool_calls or []]
        assert r.usage is not None
        return {
            "content": m.content or "",
            "calls": calls,
            "finish": r.choices[0].finish_reason,
            "tokens": r.usage.completion_tokens,
        }
    s = await client.chat.completions.create(
        model=model, temperature=0, stream=True, stream_options={"include_usage": True}, **body
    )
    content, parts, finish, tokens = "", {}, None, None
    async for chunk in s:
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
        for ch in chunk.choices:
            content += ch.delta.content or ""
            for tc in ch.delta.tool_calls or []:
                name, args = parts.get(tc.index, ("", ""))
                fn = tc.function
                parts[tc.index] = (
                    name + ((fn.name or "") if fn else ""),
                    args + ((fn.arguments or "") if fn else ""),
                )
            finish = ch.finish_reason or finish
    calls = [parts[i] for i in sorted(parts)]
    return {"content": content, "calls": calls, "finish": finish, "tokens": tokens}


@pytest.mark.parametrize("question", QUESTIONS)
async def test_required_with_parallel_unset_returns_exactly_one_call(
    client: openai.AsyncOpenAI, question: str
) -> None:
    got = await answer(
        client,
        False,
        messages=[{"role": "user", "content": question}],
        tools=[CALC],
        tool_choice="required",
        max_tokens=120,
    )
    assert got["finish"] == "tool_calls"
    (call,) = got["calls"]
    assert call[0] == "calculator"
    assert isinstance(json.loads(call[1])["expression"], str)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_call_cut_by_max_tokens_is_a_partial_call_without_markup(
    client: openai.AsyncOpenAI, vllm_engine: Engine, stream: bool
) -> None:
    # Stop a few tokens into the expression's string.
    cut = len(vllm_engine.tokenizer.encode_text(HEAD)) + 2
    got = await answer(
        client,
        stream,
        messages=[{"role": "user", "content": QUESTIONS[0]}],
        tools=[CALC],
        tool_choice="required",
        max_tokens=cut,
    )
    assert got["finish"] == "length"
    assert "<tool_call>" not in got["content"] and "{" not in got["content"]
    ((name, args),) = got["calls"]
    assert name == "calculator"
    # The arguments so far: the key and the start of the string (the grammar allows any
    # JSON whitespace, and the model writes some).
    assert re.fullmatch(r'\{\s*"expression"\s*:\s*"[^"]+', args), args
    assert got["tokens"] == cut
