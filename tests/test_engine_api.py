"""The thin engine API against the real embedded vLLM engine (one engine per session)."""

from __future__ import annotations

import json
import random
from contextlib import aclosing

import anyio
import pytest
from async_helpers import eventually

from agentrt.engine import (
    ChatMessage,
    Engine,
    GenerateRequest,
    JsonSchemaConstraint,
    PrefillRequest,
    PromptTooLongError,
    SamplingOptions,
    TokenDelta,
    ToolCallConstraint,
    ToolSchema,
)

pytestmark = [pytest.mark.anyio, pytest.mark.engine]


@pytest.fixture(params=["vllm", "http"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Every test here runs against the embedded engine and against ``HTTPEngine``."""
    return request.getfixturevalue(f"{request.param}_engine")  # type: ignore[no-any-return]


def unique_prompt(n: int, seed: int | None = None) -> tuple[int, ...]:
    """Random ordinary tokens: no two tests share a cached prefix by accident."""
    rng = random.Random(seed)
    return tuple(rng.randrange(1000, 40000) for _ in range(n))


async def collect(engine: Engine, req: GenerateRequest) -> list[TokenDelta]:
    return [d async for d in engine.generate(req)]


async def test_stream_is_ordered_and_timestamped(engine: Engine) -> None:
    deltas = await collect(
        engine, GenerateRequest(unique_prompt(40), SamplingOptions(max_tokens=8, ignore_eos=True))
    )
    times = [d.t for d in deltas]
    assert times == sorted(times)
    assert all(d.stats is None for d in deltas[:-1])
    stats = deltas[-1].stats
    assert stats is not None
    assert stats.output_tokens == sum(len(d.token_ids) for d in deltas) == 8
    assert stats.finish_reason == "length"
    first_with_token = next(d for d in deltas if d.token_ids)
    assert stats.first_token_t == first_with_token.t
    assert stats.arrival_t <= stats.first_token_t <= stats.finish_t


async def test_prefill_then_generate_hits_whole_blocks_of_the_prefix(engine: Engine) -> None:
    bs = engine.info.block_size
    prefix = unique_prompt(2 * bs + 37)
    pf = await engine.prefill(PrefillRequest(prefix))
    assert pf.prompt_tokens == len(prefix) and pf.cached_tokens == 0
    deltas = await collect(
        engine, GenerateRequest(prefix + unique_prompt(20), SamplingOptions(max_tokens=2))
    )
    stats = deltas[-1].stats
    assert stats is not None
    assert stats.cached_tokens == (len(prefix) // bs) * bs


async def test_different_cache_salt_gets_no_hit(engine: Engine) -> None:
    bs = engine.info.block_size
    prompt = unique_prompt(2 * bs + 10)
    await engine.prefill(PrefillRequest(prompt, cache_salt="tenant-a"))
    other = await collect(
        engine, GenerateRequest(prompt, SamplingOptions(max_tokens=1), cache_salt="tenant-b")
    )
    same = await collect(
        engine, GenerateRequest(prompt, SamplingOptions(max_tokens=1), cache_salt="tenant-a")
    )
    assert other[-1].stats is not None and other[-1].stats.cached_tokens == 0
    assert same[-1].stats is not None and same[-1].stats.cached_tokens == 2 * bs


async def test_eight_concurrent_streams_all_complete(engine: Engine) -> None:
    results: dict[int, int] = {}

    async def one(i: int) -> None:
        deltas = await collect(
            engine,
            GenerateRequest(
                unique_prompt(30, seed=i), SamplingOptions(max_tokens=6, ignore_eos=True)
            ),
        )
        assert deltas[-1].stats is not None
        results[i] = deltas[-1].stats.output_tokens

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(one, i)
    assert results == dict.fromkeys(range(8), 6)


async def test_closing_a_stream_aborts_the_request(engine: Engine) -> None:
    req = GenerateRequest(unique_prompt(30), SamplingOptions(max_tokens=500, ignore_eos=True))
    got = 0
    async with aclosing(engine.generate(req)) as stream:
        async for d in stream:
            got += len(d.token_ids)
            if got >= 3:
                break

    async def idle() -> bool:
        stats = await engine.stats()
        return stats.num_running == 0 and stats.num_waiting == 0

    await eventually(idle)


async def test_prompt_longer_than_context_fails_clearly(engine: Engine) -> None:
    req = GenerateRequest(
        unique_prompt(engine.info.max_model_len + 5), SamplingOptions(max_tokens=1)
    )
    with pytest.raises(PromptTooLongError, match="context length"):
        with anyio.fail_after(10):
            await collect(engine, req)


@pytest.mark.parametrize(
    "bad",
    [
        {"temperature": -0.5},
        {"top_p": 0.0},
        {"max_tokens": 0},
        {"stop": "x"},
        {"top_p": float("nan")},
    ],
)
def test_invalid_sampling_values_raise_value_error(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SamplingOptions(**bad)  # type: ignore[arg-type]


async def test_forced_output_emits_exactly_the_given_tokens(engine: Engine) -> None:
    forced = (*engine.tokenizer.encode("replayed text, exactly"), engine.tokenizer.im_end_id)
    deltas = await collect(engine, GenerateRequest(unique_prompt(20), forced_output=forced))
    assert tuple(t for d in deltas for t in d.token_ids) == forced
    assert deltas[-1].stats is not None and deltas[-1].stats.finish_reason == "stop"


async def test_json_schema_constraint_yields_matching_json(engine: Engine) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "population": {"type": "integer"},
        },
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    tok = engine.tokenizer
    prompt = tok.render(
        [ChatMessage("user", "Give the largest city of France as JSON.")],
        add_generation_prompt=True,
    )
    deltas = await collect(
        engine,
        GenerateRequest(
            tuple(prompt), SamplingOptions(max_tokens=60), constraint=JsonSchemaConstraint(schema)
        ),
    )
    value = json.loads("".join(d.text for d in deltas))
    assert set(value) == {"city", "population"} and isinstance(value["population"], int)


async def test_tool_call_constraint_yields_a_parseable_call(engine: Engine) -> None:
    tool = ToolSchema(
        "get_weather",
        "Weather for a city",
        {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}},
            "required": ["city"],
            "additionalProperties": False,
        },
    )
    tok = engine.tokenizer
    prompt = tok.render(
        [ChatMessage("user", "Weather in Paris?")], [tool], add_generation_prompt=True
    )
    deltas = await collect(
        engine,
        GenerateRequest(
            tuple(prompt),
            SamplingOptions(max_tokens=60),
            constraint=ToolCallConstraint((tool,), parallel=False),
        ),
    )
    text = "".join(d.text for d in deltas)
    assert text.startswith("<tool_call>\n") and text.rstrip().endswith("</tool_call>")
    body = json.loads(text.strip()[len("<tool_call>") : -len("</tool_call>")])
    assert body["name"] == "get_weather" and isinstance(body["arguments"]["city"], str)
