"""HTTPEngine behind a vllm-router, through httpx.MockTransport: the session header and
body field, releases routed by session, statistics summed over replicas, clear errors."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable

import httpx
import pytest

from agentrt.engine import (
    EngineError,
    GenerateRequest,
    HTTPEngine,
    SamplingOptions,
    SessionId,
    prepare_default_model,
)
from agentrt.engine._replicas import SESSION_HEADER

pytestmark = pytest.mark.anyio

REPLICAS = ("http://r1:8001", "http://r2:8002")
Handler = Callable[[httpx.Request], httpx.Response]


def _sse(*, done: bool = True) -> str:
    chunks = [
        {"choices": [{"index": 0, "text": "ok", "token_ids": [7], "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "prompt_tokens_details": {}}},
    ]
    text = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks)
    return text + ("data: [DONE]\n\n" if done else "")


class Router:
    """A vllm-router with two agentrt replicas behind it, as the client sees them: the
    router lists its workers and forwards; each replica answers its own /metrics."""

    def __init__(self, *, done: bool = True, completions_status: int = 200) -> None:
        self.seen: list[httpx.Request] = []
        self.done = done
        self.completions_status = completions_status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path, host = request.url.path, request.url.host
        if host in ("r1", "r2"):
            return self._replica(host, path)
        if path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m", "max_model_len": 512}]})
        if path == "/agentrt/info":
            info = {"max_model_len": 512, "block_size": 16, "num_blocks": 64}
            return httpx.Response(200, json={**info, "supports_hints": True})
        if path == "/list_workers":
            return httpx.Response(200, json={"urls": list(REPLICAS)})
        if path == "/v1/completions":
            if self.completions_status != 200:
                text = (
                    "Request failed: error sending request for url (http://r2:8002/v1/completions)"
                )
                return httpx.Response(self.completions_status, text=text)
            return httpx.Response(200, text=_sse(done=self.done))
        if path in ("/agentrt/release", "/finish_session"):
            return httpx.Response(200, json={"released_blocks": 2})
        return httpx.Response(404, json={"detail": "Not Found"})

    def _replica(self, host: str, path: str) -> httpx.Response:
        n = 1 if host == "r1" else 2
        if path == "/metrics":
            text = (
                f"vllm:prefix_cache_queries_total {100 * n}\n"
                f"vllm:prefix_cache_hits_total {40 * n}\n"
                f"vllm:kv_cache_usage_perc {0.1 * n}\n"
                f"vllm:num_requests_running {n}\n"
            )
            return httpx.Response(200, text=text)
        if path == "/agentrt/tier_stats":
            return httpx.Response(200, json={})
        if path == "/agentrt/info":
            return httpx.Response(200, json={"num_blocks": 64 * n})
        return httpx.Response(404)

    def posts(self, path: str) -> list[httpx.Request]:
        return [r for r in self.seen if r.method == "POST" and r.url.path == path]


async def _connect(handler: Handler) -> HTTPEngine:
    return await HTTPEngine.connect(
        "http://router:30000",
        tokenizer=prepare_default_model(),
        transport=httpx.MockTransport(handler),
    )


def _request(session: str | None = "s-1") -> GenerateRequest:
    return GenerateRequest(
        (1, 2, 3),
        SamplingOptions(max_tokens=4),
        session=None if session is None else SessionId(session),
    )


async def _drain(engine: HTTPEngine, request: GenerateRequest) -> None:
    async for _delta in engine.generate(request):
        pass


async def test_every_request_names_its_session_in_a_header_and_in_the_body() -> None:
    router = Router()
    async with await _connect(router) as engine:
        assert engine.router is not None
        await _drain(engine, _request("s-1"))
        await _drain(engine, _request(None))
    with_session, without = router.posts("/v1/completions")
    assert with_session.headers[SESSION_HEADER] == "s-1"
    body = json.loads(with_session.content)
    assert body["user"] == "s-1"
    assert "s-1" in json.dumps(body["vllm_xargs"])  # the scheduler's copy, with the hints
    assert SESSION_HEADER not in without.headers
    assert "user" not in json.loads(without.content)


async def test_a_release_goes_at_once_routed_by_its_session_then_ends_the_router_session() -> None:
    router = Router()
    async with await _connect(router) as engine:
        await engine.release(SessionId("s-9"))
        (release,) = router.posts("/agentrt/release")
        (finish,) = router.posts("/finish_session")
        await _drain(engine, _request("s-1"))
    assert release.headers[SESSION_HEADER] == "s-9"
    assert json.loads(release.content) == {"sessions": ["s-9"]}
    assert finish.url.params["session_id"] == "s-9"
    # Not also queued for the next request, which may go to another replica.
    (gen,) = router.posts("/v1/completions")
    assert "s-9" not in json.dumps(json.loads(gen.content).get("vllm_xargs", {}))


async def test_a_failed_release_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/agentrt/release":
            raise httpx.ConnectError("replica gone", request=request)
        return Router()(request)

    async with await _connect(handler) as engine:
        with caplog.at_level(logging.WARNING):
            await engine.release(SessionId("s-2"))
    assert "release of s-2: /agentrt/release failed" in caplog.text


async def test_stats_sum_every_replica_read_directly() -> None:
    async with await _connect(Router()) as engine:
        parts = await engine.replica_stats()
        total = await engine.stats()
    assert sorted(parts) == list(REPLICAS)
    assert (total.prefix_cache_queries, total.prefix_cache_hits) == (300, 120)
    assert total.num_running == 3 and total.num_blocks == 64 + 128
    # KV usage is the share of all blocks in use: (0.1 * 64 + 0.2 * 128) / 192.
    assert total.kv_usage == pytest.approx((0.1 * 64 + 0.2 * 128) / 192)


async def test_a_stream_cut_short_by_a_dying_replica_is_an_engine_error() -> None:
    async with await _connect(Router(done=False)) as engine:
        with pytest.raises(EngineError, match=r"ended before it finished.*may have died"):
            await _drain(engine, _request())


async def test_a_router_that_cannot_reach_the_replica_is_an_engine_error_naming_it() -> None:
    async with await _connect(Router(completions_status=500)) as engine:
        with pytest.raises(EngineError, match=r"is a replica down\?.*r2:8002"):
            await _drain(engine, _request())


async def test_a_plain_server_is_no_router_and_releases_ride_with_the_next_request() -> None:
    router = Router()

    def plain(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/list_workers":
            return httpx.Response(404, json={"detail": "Not Found"})
        return router(request)

    async with await _connect(plain) as engine:
        assert engine.router is None
        await engine.release(SessionId("s-3"))
        await _drain(engine, _request("s-1"))
    assert not router.posts("/agentrt/release")
    (gen,) = router.posts("/v1/completions")
    assert "s-3" in json.dumps(json.loads(gen.content)["vllm_xargs"])


async def test_a_router_down_at_start_up_is_a_clear_error() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(EngineError, match=f"cannot reach an engine at {url}"):
        await HTTPEngine.connect(url, tokenizer=prepare_default_model())
