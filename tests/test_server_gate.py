"""The server's front door on ScriptedEngine: API keys and salts, 413, 429, metrics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentrt.engine import ScriptedEngine, TimingModel
from agentrt.server import KeyRing, ServerConfig, create_app, load_keys, make_key, running_server
from agentrt.server._auth import derived_salt

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "hello"}]
FAST = TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0005)
KEY_A, KEY_B = "sk-tenant-a-0001", "sk-tenant-b-0002"


@asynccontextmanager
async def served(engine: ScriptedEngine, config: ServerConfig) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running_server(create_app(engine, agents=[], config=config)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


def chat(key: str | None = None, **extra: Any) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return {"json": {"model": "scripted", "messages": USER, **extra}, "headers": headers}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing API key"),
        ("Bearer sk-wrong", "incorrect API key"),
        ("Basic " + KEY_A, "incorrect API key"),
    ],
)
async def test_requests_without_an_accepted_key_get_401(header: str | None, message: str) -> None:
    engine = ScriptedEngine(["hi"], timing=FAST)
    async with served(engine, ServerConfig(keys=KeyRing([make_key(KEY_A)]))) as c:
        r = await c.post(
            "/v1/chat/completions",
            json={"model": "scripted", "messages": USER},
            headers={"authorization": header} if header else {},
        )
        models = await c.get("/v1/models", headers={"authorization": header} if header else {})
        health = await c.get("/health")
    assert r.status_code == 401 and models.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("authentication_error", "invalid_api_key")
    assert message in err["message"]
    assert health.status_code == 200  # operational endpoints stay open
    assert engine.requests == []
    await engine.aclose()


async def test_each_key_gets_its_own_cache_salt() -> None:
    engine = ScriptedEngine(["hi"] * 3, timing=FAST)
    keys = KeyRing([make_key(KEY_A, "a"), make_key(KEY_B, "b")])
    cached = []
    async with served(engine, ServerConfig(keys=keys)) as c:
        for key in (KEY_A, KEY_A, KEY_B):
            r = await c.post("/v1/chat/completions", **chat(key))
            assert r.status_code == 200
            cached.append(r.json()["usage"]["prompt_tokens_details"]["cached_tokens"])
    salts = [r.cache_salt for r in engine.requests]
    assert salts[0] == salts[1] == derived_salt(KEY_A)
    assert salts[2] == derived_salt(KEY_B) != salts[0]
    assert KEY_A not in salts[0]  # the salt does not reveal the key
    # Same prompt: cached for the same tenant, nothing cached across tenants.
    assert cached[0] == 0 and cached[1] > 0 and cached[2] == 0
    await engine.aclose()


async def test_body_over_the_limit_is_a_413_by_header_or_by_count() -> None:
    engine = ScriptedEngine(["hi"], timing=FAST)
    big = {"model": "scripted", "messages": [{"role": "user", "content": "x" * 5000}]}
    async with served(engine, ServerConfig(max_body_bytes=2000)) as c:
        by_header = await c.post("/v1/chat/completions", json=big)

        async def chunks() -> AsyncIterator[bytes]:
            data = json.dumps(big).encode()
            for i in range(0, len(data), 1000):
                yield data[i : i + 1000]

        by_count = await c.post(
            "/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"}
        )
        small = await c.post("/v1/chat/completions", **chat())
    for r in (by_header, by_count):
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "request_too_large"
    assert small.status_code == 200
    assert len(engine.requests) == 1
    await engine.aclose()


async def test_requests_over_the_concurrency_limit_get_429_until_a_slot_frees() -> None:
    # A slow stream holds the only slot; reading its first chunk proves it is in flight.
    engine = ScriptedEngine(
        ["a" * 80, "b", "c"], timing=TimingModel(prefill_s_per_token=0.0, decode_step_s=0.005)
    )
    async with served(engine, ServerConfig(max_concurrency=1)) as c:
        async with c.stream("POST", "/v1/chat/completions", **chat(stream=True)) as slow:
            lines = slow.aiter_lines()
            assert (await anext(lines)).startswith("data: ")
            refused = await c.post("/v1/chat/completions", **chat())
            async for _ in lines:
                pass
        after = await c.post("/v1/chat/completions", **chat())
        runs_refused = await c.get("/v1/models")  # not limited
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "concurrency_limit_exceeded"
    assert after.status_code == 200 and runs_refused.status_code == 200
    await engine.aclose()


async def test_metrics_report_requests_tokens_and_engine_cache() -> None:
    engine = ScriptedEngine(["hello"] * 2, timing=FAST)
    async with served(engine, ServerConfig()) as c:
        await c.post("/v1/chat/completions", **chat())
        await c.post("/v1/chat/completions", **chat())
        await c.post("/v1/chat/completions", json={"model": "nope", "messages": USER})
        text = (await c.get("/metrics")).text
    samples = _samples(text)
    assert (
        samples[
            'agentrt_http_requests_total{method="POST",route="/v1/chat/completions",status="200"}'
        ]
        == 2
    )
    assert (
        samples[
            'agentrt_http_requests_total{method="POST",route="/v1/chat/completions",status="404"}'
        ]
        == 1
    )
    assert samples["agentrt_chat_completion_tokens_total"] == 2 * len("hello ")
    prompt = samples["agentrt_chat_prompt_tokens_total"]
    assert prompt == sum(len(r.prompt) for r in engine.requests)
    assert samples["agentrt_chat_cached_tokens_total"] > 0  # the second request hit the cache
    stats = await engine.stats()
    assert samples["agentrt_engine_prefix_cache_queries_total"] == stats.prefix_cache_queries
    assert samples["agentrt_engine_prefix_cache_hits_total"] == stats.prefix_cache_hits
    assert samples["agentrt_active_requests"] == 0
    assert (
        'agentrt_http_request_duration_seconds_count{method="POST",route="/v1/chat/completions"}'
        in samples
    )
    await engine.aclose()


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_keys_load_from_flags_env_and_files(tmp_path: Path) -> None:
    listed = tmp_path / "keys.txt"
    listed.write_text("# tenants\nsk-file-1 alice\nsk-file-2\n")
    as_json = tmp_path / "keys.json"
    as_json.write_text(
        json.dumps(
            [
                {"key": "sk-j1", "name": "team", "cache_salt": "shared"},
                {"key": "sk-j2", "name": "team", "cache_salt": "shared"},
                {"key": "sk-j3", "cache_salt": None},
            ]
        )
    )
    ring = load_keys(["sk-flag"], "sk-env-1, sk-env-2", listed)
    assert len(ring) == 5
    alice = ring.check("Bearer sk-file-1")
    assert (
        alice is not None
        and alice.name == "alice"
        and alice.cache_salt == derived_salt("sk-file-1")
    )
    assert ring.check("bearer sk-env-2") is not None
    assert ring.check("Bearer sk-file-") is None and ring.check(None) is None
    assert "sk-flag" not in repr(ring.check("Bearer sk-flag"))
    team = load_keys(file=as_json)
    j1, j2, j3 = (team.check(f"Bearer sk-j{i}") for i in (1, 2, 3))
    assert j1 and j2 and j3
    assert j1.cache_salt == j2.cache_salt == "shared" and j3.cache_salt is None
    assert not load_keys().enabled


def test_a_malformed_keys_file_names_the_entry(tmp_path: Path) -> None:
    bad = tmp_path / "keys.json"
    bad.write_text(json.dumps([{"key": "ok"}, {"name": "no key"}]))
    with pytest.raises(ValueError, match=r"entry \[1\]"):
        load_keys(file=bad)
    with pytest.raises(ValueError, match="listed twice"):
        load_keys(["same", "same"])
