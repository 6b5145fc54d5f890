"""The engine load signal and background prefills on the real engine, embedded and over
HTTP (issue 14: split prefill on spare capacity only)."""

from __future__ import annotations

import random
from contextlib import aclosing

import anyio
import pytest

from agentrt.engine import Engine, GenerateRequest, PrefillRequest, SamplingOptions

pytestmark = [pytest.mark.anyio, pytest.mark.engine]


@pytest.fixture(params=["vllm", "http"])
def engine(request: pytest.FixtureRequest) -> Engine:
    return request.getfixturevalue(f"{request.param}_engine")  # type: ignore[no-any-return]


def unique_prompt(n: int, seed: int) -> tuple[int, ...]:
    rng = random.Random(seed)
    return tuple(rng.randrange(1000, 40000) for _ in range(n))


async def test_an_idle_engine_knows_it_has_room(engine: Engine) -> None:
    load = await engine.load()
    assert load.known and load.waiting == 0 and not load.saturated


async def test_a_running_request_shows_in_the_load(engine: Engine) -> None:
    req = GenerateRequest(unique_prompt(64, 1401), SamplingOptions(max_tokens=200, ignore_eos=True))
    seen = 0
    async with aclosing(engine.generate(req)) as stream:
        async for _delta in stream:
            seen += 1
            if seen == 20:  # well into decoding: the gauges have been updated
                load = await engine.load()
                assert load.known and load.running >= 1
                break


async def test_a_background_prefill_is_served_and_cached(engine: Engine) -> None:
    bs = engine.info.block_size
    prompt = unique_prompt(2 * bs + 5, 1402)
    stats = await engine.prefill(PrefillRequest(prompt, background=True))
    assert stats.prompt_tokens == len(prompt)
    follow = GenerateRequest((*prompt, 7, 8, 9), SamplingOptions(max_tokens=1))
    last = None
    with anyio.fail_after(120):
        async for delta in engine.generate(follow):
            last = delta.stats or last
    assert last is not None and last.cached_tokens == 2 * bs
