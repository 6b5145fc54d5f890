"""Issue 11.4-11.5 on the real embedded engine through the official ``openai`` client: the
tools-or-answer grammar compiles in vLLM and its output parses; logprobs, logit_bias and
stop_token_ids change what vLLM does. Small ``max_tokens``: the CPU is slow."""

from __future__ import annotations

import json

import openai
import pytest
import test_tool_call_parity_engine as parity
from test_server_openai_engine import CALC

from agentrt.engine import Engine

pytestmark = [pytest.mark.anyio, pytest.mark.engine]

ANSWER = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}},
    "required": ["answer"],
    "additionalProperties": False,
}
SAY = [{"role": "user", "content": "Say hello."}]
client = parity.client  # the same module-scoped server and openai client


@pytest.mark.parametrize(
    "question",
    ["What is 123 * 457? Use the calculator.", "Reply in JSON with the field answer: 2 + 2?"],
)
async def test_tools_beside_a_schema_give_a_call_or_an_answer(
    client: openai.AsyncOpenAI, question: str
) -> None:
    r = await client.chat.completions.create(
        model=(await client.models.list()).data[0].id,
        messages=[{"role": "user", "content": question}],
        tools=[CALC],  # type: ignore[list-item]
        tool_choice="auto",
        parallel_tool_calls=False,  # one call, closed well within max_tokens
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": ANSWER}},
        max_tokens=160,
        temperature=0,
    )
    choice = r.choices[0]
    calls = choice.message.tool_calls or []
    if calls:
        assert choice.finish_reason == "tool_calls" and not choice.message.content
        for c in calls:
            assert c.function.name == "calculator"  # type: ignore[union-attr]
            assert isinstance(json.loads(c.function.arguments)["expression"], str)  # type: ignore[union-attr]
    else:
        assert choice.finish_reason == "stop"
        assert isinstance(json.loads(choice.message.content or "")["answer"], int)


async def test_logprobs_logit_bias_and_stop_token_ids_reach_vllm(
    client: openai.AsyncOpenAI, vllm_engine: Engine
) -> None:
    model = (await client.models.list()).data[0].id
    greedy = await client.chat.completions.create(
        model=model, messages=SAY, max_tokens=4, temperature=0, logprobs=True, top_logprobs=2
    )
    entries = greedy.choices[0].logprobs.content  # type: ignore[union-attr]
    assert entries is not None and greedy.usage is not None
    assert len(entries) == greedy.usage.completion_tokens
    for e in entries:
        assert e.logprob <= 0 and len(e.top_logprobs) == 2
        assert e.top_logprobs[0].token == e.token  # temperature 0 takes the best
        assert e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob
    first = greedy.choices[0].message.content or ""
    # The first token's id (its text re-encoded): ban it, and the answer starts differently.
    first_id = vllm_engine.tokenizer.encode(entries[0].token)[0]
    banned = await client.chat.completions.create(
        model=model, messages=SAY, max_tokens=4, temperature=0, logit_bias={str(first_id): -100}
    )
    assert (banned.choices[0].message.content or "") != first
    stopped = await client.chat.completions.create(
        model=model,
        messages=SAY,
        max_tokens=4,
        temperature=0,
        extra_body={"stop_token_ids": [first_id]},
    )
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.usage is not None and stopped.usage.completion_tokens == 1
    assert stopped.choices[0].message.content in ("", None)


@pytest.mark.parametrize("narrowing", [{"top_k": 1}, {"min_p": 1.0}])
async def test_top_k_and_min_p_narrow_sampling_to_the_best_token(
    client: openai.AsyncOpenAI, narrowing: dict[str, float]
) -> None:
    """At a high temperature only the best token survives top_k=1 or min_p=1: the greedy
    answer, whatever the seed."""
    model = (await client.models.list()).data[0].id
    greedy = await client.chat.completions.create(
        model=model, messages=SAY, max_tokens=6, temperature=0
    )
    for seed in (1, 2):
        hot = await client.chat.completions.create(
            model=model,
            messages=SAY,
            max_tokens=6,
            temperature=1.8,
            seed=seed,
            extra_body=narrowing,
        )
        assert hot.choices[0].message.content == greedy.choices[0].message.content
