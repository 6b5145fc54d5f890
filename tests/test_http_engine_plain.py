"""HTTPEngine through httpx.MockTransport: a plain vLLM server, and one with the agentrt plugin."""

from __future__ import annotations

import json

import httpx
import pytest

from agentrt.engine import (
    CacheHint,
    EngineError,
    GenerateRequest,
    HTTPEngine,
    SamplingOptions,
    SessionId,
    Tier,
    TierStats,
    prepare_default_model,
)

pytestmark = pytest.mark.anyio


def plain_vllm(
    seen: list[dict[str, object]], *, finish: str = "stop", plugin: bool = False
) -> httpx.MockTransport:
    """Answers like vLLM's OpenAI server: models, completions as SSE ending with ``finish``;
    the /agentrt routes only with ``plugin`` (``agentrt engine serve``)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "plain", "max_model_len": 512}]})
        if plugin and request.url.path == "/agentrt/info":
            info = {"max_model_len": 512, "block_size": 16, "num_blocks": 64}
            return httpx.Response(200, json={**info, "supports_hints": True})
        if plugin and request.url.path == "/agentrt/tier_stats":
            tiers = {"SYSTEM": {"cached_blocks": 2, "evictions": 1, "hits": 3}}
            return httpx.Response(200, json={"tiers": tiers})
        if request.url.path == "/metrics":
            return httpx.Response(200, text="vllm:prefix_cache_queries_total 10\n")
        if request.url.path == "/v1/completions":
            body = json.loads(request.content)
            seen.append(body)
            chunks = [
                {
                    "choices": [
                        {"index": 0, "text": "Hi", "token_ids": [101], "finish_reason": None}
                    ]
                },
                {
                    "choices": [
                        {"index": 0, "text": "!", "token_ids": [102], "finish_reason": finish}
                    ]
                },
                {
                    "choices": [],
                    "usage": {
                        "prompt_tokens": 3,
                        "completion_tokens": 2,
                        "prompt_tokens_details": {"cached_tokens": 0},
                    },
                },
            ]
            sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
            return httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"})
        return httpx.Response(404, json={"detail": "Not Found"})

    return httpx.MockTransport(handler)


async def test_plain_server_works_without_hints_given_a_local_tokenizer() -> None:
    seen: list[dict[str, object]] = []
    engine = await HTTPEngine.connect(
        "http://plain", tokenizer=prepare_default_model(), transport=plain_vllm(seen)
    )
    assert engine.info.supports_hints is False and engine.info.max_model_len == 512
    req = GenerateRequest(
        (1, 2, 3),
        SamplingOptions(max_tokens=4),
        hints=(CacheHint(0, 3, Tier.SYSTEM),),
        session=SessionId("s"),
    )
    deltas = [d async for d in engine.generate(req)]
    await engine.release(SessionId("s"))
    await engine.aclose()
    assert [d.token_ids for d in deltas] == [(101,), (102,)]
    assert deltas[-1].stats is not None and deltas[-1].stats.output_tokens == 2
    assert deltas[-1].stats.finish_reason == "stop"
    # No tier scheduler behind it: hints and releases are not sent at all.
    assert seen[0]["prompt"] == [1, 2, 3] and "vllm_xargs" not in seen[0]


async def test_plain_server_without_a_local_tokenizer_is_a_clear_error() -> None:
    with pytest.raises(EngineError, match="tokenizer"):
        await HTTPEngine.connect("http://plain", transport=plain_vllm([]))


async def test_unreachable_server_is_a_clear_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(EngineError, match="cannot reach"):
        await HTTPEngine.connect("http://nowhere", transport=httpx.MockTransport(refuse))


async def test_an_unknown_finish_reason_is_an_error_that_names_it() -> None:
    engine = await HTTPEngine.connect(
        "http://plain",
        tokenizer=prepare_default_model(),
        transport=plain_vllm([], finish="content_filter"),
    )
    deltas = [d async for d in engine.generate(GenerateRequest((1, 2, 3)))]
    await engine.aclose()
    stats = deltas[-1].stats
    assert stats is not None and stats.finish_reason == "error"
    assert stats.error is not None and "content_filter" in stats.error


async def test_a_release_rides_once_with_the_next_request() -> None:
    seen: list[dict[str, object]] = []
    engine = await HTTPEngine.connect(
        "http://agentrt", tokenizer=prepare_default_model(), transport=plain_vllm(seen, plugin=True)
    )
    await engine.release(SessionId("done"))
    for _ in range(2):
        _ = [d async for d in engine.generate(GenerateRequest((1, 2, 3)))]
    await engine.aclose()
    xargs = [body.get("vllm_xargs") for body in seen]
    assert isinstance(xargs[0], dict)
    assert json.loads(xargs[0]["agentrt"])["release"] == ["done"] and xargs[1] is None


async def test_max_tokens_is_cut_to_the_context_left() -> None:
    seen: list[dict[str, object]] = []
    engine = await HTTPEngine.connect(
        "http://plain", tokenizer=prepare_default_model(), transport=plain_vllm(seen)
    )
    prompt = tuple(range(1, 511))  # 2 tokens left of 512
    _ = [d async for d in engine.generate(GenerateRequest(prompt, SamplingOptions(max_tokens=99)))]
    _ = [d async for d in engine.generate(GenerateRequest(prompt, forced_output=(5, 6, 7)))]
    await engine.aclose()
    assert [body["max_tokens"] for body in seen] == [2, 2]


async def test_tier_stats_come_from_the_plugin_route() -> None:
    engine = await HTTPEngine.connect(
        "http://agentrt", tokenizer=prepare_default_model(), transport=plain_vllm([], plugin=True)
    )
    stats = await engine.stats()
    await engine.aclose()
    assert stats.prefix_cache_queries == 10 and stats.num_blocks == 64
    assert stats.tiers["SYSTEM"] == TierStats(cached_blocks=2, evictions=1, hits=3)
    assert stats.tiers["SCRATCH"] == TierStats(cached_blocks=0, evictions=0, hits=0)
