"""What every engine does the same way (``EngineBase``), seen through ``ScriptedEngine``."""

from __future__ import annotations

import pytest

from agentrt.engine import (
    CacheHint,
    Engine,
    EngineProxy,
    GenerateRequest,
    PrefillRequest,
    PrefillStats,
    PromptTooLongError,
    RequestStats,
    SamplingOptions,
    ScriptedEngine,
    SessionId,
    Tier,
)

pytestmark = pytest.mark.anyio

BS = 4


async def run(engine: Engine, request: GenerateRequest) -> tuple[list[int], RequestStats]:
    out: list[int] = []
    stats = None
    async for delta in engine.generate(request):
        out.extend(delta.token_ids)
        stats = delta.stats or stats
    assert stats is not None
    return out, stats


async def test_request_ids_are_made_unless_given() -> None:
    engine = ScriptedEngine(["a", "b", "c"])
    prompt = (1, 2, 3)
    ids = [(await run(engine, GenerateRequest(prompt)))[1].request_id for _ in range(2)]
    named = (await run(engine, GenerateRequest(prompt, request_id="mine")))[1]  # type: ignore[arg-type]
    assert ids == ["scripted-0", "scripted-1"] and named.request_id == "mine"
    await engine.aclose()


async def test_a_prompt_that_fills_the_context_is_refused() -> None:
    engine = ScriptedEngine(["a"], max_model_len=8)
    with pytest.raises(PromptTooLongError, match="context length of 8"):
        await run(engine, GenerateRequest(tuple(range(8))))
    assert engine.requests == []
    await engine.aclose()


async def test_output_is_cut_to_the_context_left_and_says_length() -> None:
    engine = ScriptedEngine(["abcdefgh"], max_model_len=10)
    out, stats = await run(engine, GenerateRequest(tuple(range(6)), SamplingOptions(max_tokens=50)))
    assert len(out) == 4 and stats.finish_reason == "length"
    await engine.aclose()


@pytest.mark.parametrize(
    ("room", "finish"), [(100, "stop"), (3, "length")], ids=["whole", "cut-by-context"]
)
async def test_forced_output_stops_only_when_it_came_out_whole(room: int, finish: str) -> None:
    engine = ScriptedEngine(max_model_len=4 + room)
    forced = (*engine.tokenizer.encode("hello"), engine.tokenizer.im_end_id)
    out, stats = await run(engine, GenerateRequest((1, 2, 3, 4), forced_output=forced))
    assert tuple(out) == forced[:room] and stats.finish_reason == finish
    await engine.aclose()


async def test_a_forced_output_without_end_of_turn_says_length() -> None:
    engine = ScriptedEngine()
    _, stats = await run(engine, GenerateRequest((1, 2), forced_output=(65, 66)))
    assert stats.finish_reason == "length"
    await engine.aclose()


async def test_a_release_takes_effect_at_once() -> None:
    """As the real engines apply it (between two steps): running requests allocate at
    every step, so a release that waited for the next request would come late."""
    engine = ScriptedEngine(["x", "y"], block_size=BS, num_blocks=16)
    run_id = SessionId("run")
    prompt = tuple(range(100, 112))  # three blocks
    hints = (CacheHint(0, 4, Tier.SYSTEM), CacheHint(4, 12, Tier.TOOL_OUTPUT))
    await run(engine, GenerateRequest(prompt, hints=hints, session=run_id))

    def cached(tier: str) -> int:
        return engine.cache.tier_stats()[tier].cached_blocks

    assert (cached("SYSTEM"), cached("TOOL_OUTPUT")) == (1, 2)
    await engine.release(run_id)  # no live run shares the system block: it goes too
    assert (cached("SYSTEM"), cached("TOOL_OUTPUT"), cached("SCRATCH")) == (0, 0, 3)
    await engine.release(run_id)  # a second release changes nothing
    assert (cached("SYSTEM"), cached("TOOL_OUTPUT"), cached("SCRATCH")) == (0, 0, 3)
    await engine.aclose()


async def test_prefill_takes_a_request_and_leaves_its_full_blocks_cached() -> None:
    engine = ScriptedEngine(["answer"], block_size=BS)
    prefix = tuple(range(200, 210))
    pf = await engine.prefill(PrefillRequest(prefix, session=SessionId("s"), priority=3))
    assert (pf.prompt_tokens, pf.cached_tokens) == (10, 0)
    sent = engine.requests[-1]
    assert (sent.session, sent.priority, sent.sampling.max_tokens) == ("s", 3, 1)
    _, stats = await run(engine, GenerateRequest((*prefix, 1, 2)))
    assert stats.cached_tokens == 8
    await engine.aclose()


async def test_a_proxy_passes_the_prefill_request_on() -> None:
    seen: list[PrefillRequest] = []

    class Recording(EngineProxy):
        async def prefill(self, request: PrefillRequest) -> PrefillStats:
            seen.append(request)
            return await super().prefill(request)

    inner = ScriptedEngine()
    request = PrefillRequest((1, 2, 3), cache_salt="t")
    async with Recording(inner, owns_inner=True) as proxy:
        assert (await proxy.prefill(request)).prompt_tokens == 3
    assert seen == [request] and inner.requests[-1].cache_salt == "t"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"prompt": ()}, "prompt"), ({"hints": (CacheHint(0, 9, Tier.SYSTEM),)}, "hints")],
)
def test_a_bad_prefill_request_names_the_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"prompt": (1, 2, 3), **kwargs}
    with pytest.raises(ValueError, match=f"PrefillRequest.{field}"):
        PrefillRequest(**args)  # type: ignore[arg-type]
