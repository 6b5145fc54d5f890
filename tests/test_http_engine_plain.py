"""HTTPEngine against a plain vLLM server (no agentrt plugin), through httpx.MockTransport."""

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
    prepare_default_model,
)

pytestmark = pytest.mark.anyio


def plain_vllm(seen: list[dict[str, object]]) -> httpx.MockTransport:
    """Answers like vLLM's OpenAI server: models, completions as SSE, no /agentrt routes."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "plain", "max_model_len": 512}]})
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
                        {"index": 0, "text": "!", "token_ids": [102], "finish_reason": "stop"}
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
