"""Issue 11 on the real embedded engine: the official ``openai`` client runs a tool round
and sends the call back compacted (as pydantic-ai does); the echoed turn is served
from the remembered tokens, so the second request's cached tokens cover the first
request's prompt and everything the model generated. With ``session_reuse`` off the
re-rendered turn diverges and the cache stops earlier."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from test_server_openai_engine import CALC

from agentrt.engine import Engine
from agentrt.server import ServerConfig, create_app, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.engine]

# A few 128-token KV blocks, so that reuse shows at block granularity.
SYSTEM = "You are a careful assistant who uses the calculator for arithmetic. " * 12


async def tool_round(base_url: str) -> tuple[Any, Any]:
    """A call (forced), its result, the answer; the two completions."""
    async with openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="none") as client:
        model = (await client.models.list()).data[0].id
        messages: list[Any] = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "What is 17 * 23?"},
        ]
        first = await client.chat.completions.create(
            model=model,
            messages=messages,
            tools=[CALC],  # type: ignore[list-item]
            tool_choice="required",
            max_tokens=128,
            temperature=0,
        )
        call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
        compact = json.dumps(json.loads(call.function.arguments), separators=(",", ":"))  # type: ignore[union-attr]
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": "calculator", "arguments": compact},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "391"})
        second = await client.chat.completions.create(
            model=model,
            messages=messages,
            tools=[CALC],
            max_tokens=8,
            temperature=0,  # type: ignore[list-item]
        )
    return first, second


async def test_an_echoed_compacted_call_hits_the_generated_tokens(vllm_engine: Engine) -> None:
    block = vllm_engine.info.block_size
    app = create_app(vllm_engine, agents=[], config=ServerConfig())
    async with running_server(app) as url:
        first, second = await tool_round(url)
    generated = first.usage.prompt_tokens + first.usage.completion_tokens
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert first.choices[0].finish_reason == "tool_calls"
    assert cached >= generated // block * block, (cached, generated)

    await vllm_engine.reset_prefix_cache()  # type: ignore[attr-defined]
    off = create_app(vllm_engine, agents=[], config=ServerConfig(session_reuse=False))
    async with running_server(off) as url:
        _, second_off = await tool_round(url)
    assert second_off.usage.prompt_tokens_details.cached_tokens <= cached
