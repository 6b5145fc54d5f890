"""Jump-forward on the real engine (the default model): a forced call's fixed head is
prefilled, not decoded, and the caller cannot tell — the head comes out as the first
output tokens, the call parses, usage counts it as output, and the continuation's
prompt (which holds the head as output) finds its KV cached. The embedded engine and
``HTTPEngine`` over ``agentrt engine serve`` alike."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from test_engine_api import collect

from agentrt import SamplingOptions
from agentrt.engine import (
    ChatMessage,
    GenerateRequest,
    HTTPEngine,
    ParsedCall,
    RequestStats,
    ToolCallConstraint,
    ToolSchema,
    VLLMEngine,
)
from agentrt.engine._jump_forward import plan_jump

pytestmark = [pytest.mark.anyio, pytest.mark.engine]


@dataclass(frozen=True, slots=True)
class Out:
    """One response, joined: its tokens, its text and its stats."""

    ids: tuple[int, ...]
    text: str
    stats: RequestStats


CALC = ToolSchema(
    "calculator",
    "Evaluate an arithmetic expression.",
    {
        "type": "object",
        "properties": {"expression": {"type": "string", "maxLength": 40}},
        "required": ["expression"],
        "additionalProperties": False,
    },
)


async def generate(engine: VLLMEngine | HTTPEngine, request: GenerateRequest) -> Out:
    deltas = await collect(engine, request)
    stats = deltas[-1].stats
    assert stats is not None
    return Out(
        tuple(t for d in deltas for t in d.token_ids), "".join(d.text for d in deltas), stats
    )


def calls(engine: VLLMEngine | HTTPEngine, text: str) -> list[ParsedCall]:
    parser = engine.tokenizer.tool_format.parser()
    events = [*parser.feed(text), *parser.finish()]
    return [e for e in events if isinstance(e, ParsedCall)]


async def test_a_forced_call_is_jumped_and_reads_as_decoded(vllm_engine: VLLMEngine) -> None:
    await check_jump(vllm_engine)


@pytest.mark.server
async def test_a_forced_call_is_jumped_over_http_too(http_engine: HTTPEngine) -> None:
    """The same through ``agentrt engine serve``: the head goes as prompt tokens to the
    completions endpoint and the rest of the grammar as its structural tag."""
    await check_jump(http_engine)


async def check_jump(engine: VLLMEngine | HTTPEngine) -> None:
    tok = engine.tokenizer
    prompt = tuple(
        tok.render([ChatMessage("user", "What is 12 * 7?")], [CALC], add_generation_prompt=True)
    )
    request = GenerateRequest(
        prompt, SamplingOptions(max_tokens=80), ToolCallConstraint((CALC,), parallel=False)
    )
    jump = plan_jump(request, tok.encode_text)
    assert jump is not None and len(jump.head) >= 8
    before = engine.jumped_tokens
    on = await generate(engine, request)
    assert engine.jumped_tokens - before == len(jump.head)
    assert on.ids[: len(jump.head)] == jump.head and on.text.startswith(jump.head_text)
    assert on.stats.finish_reason == "stop"
    assert on.stats.output_tokens == len(on.ids)
    assert on.stats.prompt_tokens == len(prompt) and on.stats.cached_tokens <= len(prompt)
    (call,) = calls(engine, on.text)
    assert call.name == "calculator" and isinstance(call.arguments["expression"], str)

    # The continuation holds the head as output: its KV, computed as prompt, is cached.
    follow = GenerateRequest((*prompt, *on.ids), SamplingOptions(max_tokens=1))
    cont = await generate(engine, follow)
    block = engine.info.block_size
    assert cont.stats.cached_tokens >= (len(prompt) + len(jump.head)) // block * block

    # Without the jump the model decodes the head itself: the same call comes out.
    engine.jump_forward = False
    try:
        off = await generate(engine, request)
    finally:
        engine.jump_forward = True
    assert engine.jumped_tokens - before == len(jump.head)
    (plain,) = calls(engine, off.text)
    assert (plain.name, plain.arguments) == (call.name, call.arguments)
