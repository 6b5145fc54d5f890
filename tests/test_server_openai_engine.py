"""The REST server on the real embedded engine, driven by the official ``openai`` client
(and raw HTTP for errors, tenants and disconnects). Small ``max_tokens``: the CPU is slow."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import openai
import pytest

from agentrt.engine import Engine
from agentrt.server import KeyRing, ServerConfig, create_app, make_key, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.engine]

KEY_A, KEY_B = "sk-test-tenant-a", "sk-test-tenant-b"
CALC = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
# Longer than one 128-token KV block, so a repeat can be served from the prefix cache.
LONG_SYSTEM = "You are a careful assistant. Answer in one short sentence. " * 20


@pytest.fixture(scope="module")
async def base_url(vllm_engine: Engine) -> AsyncIterator[str]:
    keys = KeyRing([make_key(KEY_A, "a"), make_key(KEY_B, "b")])
    app = create_app(vllm_engine, agents=[], config=ServerConfig(keys=keys))
    async with running_server(app) as url:
        yield url


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    c = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=KEY_A, max_retries=0)
    yield c
    await c.close()


@pytest.fixture
async def model(client: openai.AsyncOpenAI) -> str:
    return (await client.models.list()).data[0].id


async def test_plain_completion(client: openai.AsyncOpenAI, model: str) -> None:
    r = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=8,
        temperature=0,
    )
    choice = r.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert r.usage is not None and 0 < r.usage.completion_tokens <= 8


async def test_streamed_completion_with_usage(client: openai.AsyncOpenAI, model: str) -> None:
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Name a colour."}],
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    async for chunk in stream:
        usage = chunk.usage or usage
        for ch in chunk.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
    assert text and finish in ("stop", "length")
    assert usage is not None and 0 < usage.completion_tokens <= 8


async def tool_calls(
    client: openai.AsyncOpenAI, stream: bool, **kw: Any
) -> tuple[list[dict[str, str]], str | None]:
    """The calls of one completion (accumulated from deltas when streamed) and its finish."""
    if not stream:
        r = await client.chat.completions.create(stream=False, **kw)
        msg = r.choices[0].message
        calls = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in msg.tool_calls or []
            if c.type == "function"
        ]
        return calls, r.choices[0].finish_reason
    slots: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in await client.chat.completions.create(stream=True, **kw):
        for ch in chunk.choices:
            finish = ch.finish_reason or finish
            for tc in ch.delta.tool_calls or []:
                slot = slots.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += tc.id or ""
                if tc.function is not None:
                    slot["name"] += tc.function.name or ""
                    slot["arguments"] += tc.function.arguments or ""
    return [slots[i] for i in sorted(slots)], finish


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(
    ("choice", "question"),
    [
        ("required", "What is 12 * 7?"),
        ({"type": "function", "function": {"name": "get_weather"}}, "Weather in Paris?"),
    ],
    ids=["required", "named"],
)
async def test_forced_tool_call(
    client: openai.AsyncOpenAI, model: str, stream: bool, choice: Any, question: str
) -> None:
    calls, finish = await tool_calls(
        client, stream, model=model, messages=[{"role": "user", "content": question}],
        tools=[CALC, WEATHER], tool_choice=choice, parallel_tool_calls=False, max_tokens=60,
        temperature=0,
    )  # fmt: skip
    assert finish == "tool_calls"
    (call,) = calls
    assert call["id"].startswith("call_")
    if choice != "required":  # named: that tool; required: either listed tool
        assert call["name"] == "get_weather"
    required_arg = {"calculator": "expression", "get_weather": "city"}[call["name"]]
    assert isinstance(json.loads(call["arguments"])[required_arg], str)


async def test_tool_result_round_trip_gives_a_final_answer(
    client: openai.AsyncOpenAI, model: str
) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "Use the tool result to answer."},
        {"role": "user", "content": "What is 12 * 7?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"expression": "12 * 7"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "84"},
    ]
    r = await client.chat.completions.create(
        model=model,
        messages=messages,
        tools=[CALC],  # type: ignore[list-item]
        tool_choice="none",
        max_tokens=16,
        temperature=0,
    )
    choice = r.choices[0]
    assert choice.message.content and not choice.message.tool_calls
    assert choice.finish_reason in ("stop", "length")


async def test_repeated_prefix_reports_cached_tokens(
    client: openai.AsyncOpenAI, model: str
) -> None:
    messages: list[Any] = [
        {"role": "system", "content": f"[{uuid.uuid4().hex}] {LONG_SYSTEM}"},
        {"role": "user", "content": "Hi."},
    ]
    first = await client.chat.completions.create(
        model=model, messages=messages, max_tokens=2, temperature=0
    )
    second = await client.chat.completions.create(
        model=model, messages=messages, max_tokens=2, temperature=0
    )
    assert first.usage and second.usage and first.usage.prompt_tokens > 128
    assert first.usage.prompt_tokens_details and second.usage.prompt_tokens_details
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage.prompt_tokens_details.cached_tokens >= 128


async def test_json_schema_response_format_yields_parseable_json(
    client: openai.AsyncOpenAI, model: str
) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    r = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What is 2 + 2? Reply in JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema},
        },
        max_tokens=40,
        temperature=0,
    )
    data = json.loads(r.choices[0].message.content or "")
    assert isinstance(data["answer"], int)


async def test_prompt_over_the_context_length_is_a_400(base_url: str) -> None:
    async with httpx.AsyncClient(
        base_url=base_url, headers={"authorization": f"Bearer {KEY_A}"}
    ) as c:
        model = (await c.get("/v1/models")).json()["data"][0]["id"]
        r = await c.post(
            "/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "word " * 2100}]},
        )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "context_length_exceeded"
    assert "2048" in r.json()["error"]["message"]


async def test_tenants_never_share_cached_prefixes(base_url: str) -> None:
    body = {
        "messages": [
            {"role": "system", "content": f"[{uuid.uuid4().hex}] {LONG_SYSTEM}"},
            {"role": "user", "content": "Hi."},
        ],
        "max_tokens": 1,
        "temperature": 0,
    }

    async def cached(key: str) -> int:
        async with httpx.AsyncClient(
            base_url=base_url, headers={"authorization": f"Bearer {key}"}
        ) as c:
            model = (await c.get("/v1/models")).json()["data"][0]["id"]
            r = await c.post("/v1/chat/completions", json={"model": model, **body}, timeout=60)
        assert r.status_code == 200, r.text
        return int(r.json()["usage"]["prompt_tokens_details"]["cached_tokens"])

    a1, a2, b1, b2 = [await cached(k) for k in (KEY_A, KEY_A, KEY_B, KEY_B)]
    assert a1 == 0 and a2 >= 128  # the same tenant hits its cache
    assert b1 == 0  # the other tenant does not, although the prompt is identical
    assert b2 >= 128


async def test_client_disconnect_aborts_the_engine_request(
    base_url: str, vllm_engine: Engine
) -> None:
    headers = {"authorization": f"Bearer {KEY_A}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as c:
        model = (await c.get("/v1/models")).json()["data"][0]["id"]
        body = {
            "model": model,
            "stream": True,
            "max_tokens": 1500,
            "ignore_eos": True,
            "messages": [{"role": "user", "content": "Tell a long story."}],
        }
        async with c.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            lines = r.aiter_lines()
            for _ in range(3):
                await anext(lines)
            assert (await vllm_engine.stats()).num_running == 1
        # The response is closed: the engine must let go of the request promptly.
        with anyio.fail_after(15):
            while (await vllm_engine.stats()).num_running:
                await anyio.sleep(0.05)
