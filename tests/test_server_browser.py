"""A key-less local server and web pages: no cross-site "simple" POSTs, no foreign
Origins, no unknown Hosts (DNS rebinding), no key-less listening beyond loopback."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from agentrt.engine import ScriptedEngine, TimingModel
from agentrt.server import (
    KeyRing,
    ServerConfig,
    calculator_agent,
    create_app,
    make_key,
    running_server,
)
from agentrt.server._browser import BrowserGuard, host_name, is_loopback
from agentrt.server._cli import add_arguments, build

pytestmark = pytest.mark.anyio

FAST = TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0005)
CHAT = b'{"model": "scripted", "messages": [{"role": "user", "content": "hi"}]}'
RUN = b'{"input": "1+1"}'


@asynccontextmanager
async def served(**config: Any) -> AsyncIterator[tuple[httpx.AsyncClient, ScriptedEngine]]:
    engine = ScriptedEngine(["ok"] * 8, timing=FAST)
    app = create_app(engine, agents=[calculator_agent()], config=ServerConfig(**config))
    async with running_server(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as c:
        yield c, engine
    await engine.aclose()


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
@pytest.mark.parametrize(
    ("path", "body"), [("/v1/chat/completions", CHAT), ("/v1/agents/calculator/runs", RUN)]
)
async def test_a_body_a_page_could_send_cross_site_is_refused(
    content_type: str | None, path: str, body: bytes
) -> None:
    # What a web page may POST to another origin without a CORS preflight: never JSON.
    headers = {"content-type": content_type} if content_type else {}
    async with served() as (c, engine):
        r = await c.post(path, content=body, headers=headers)
        listed = await c.get("/v1/runs/run_none")  # bodiless requests are unaffected
    assert r.status_code == 415, r.text
    err = r.json()["error"]
    assert (err["code"], err["param"]) == ("unsupported_media_type", "content-type")
    assert engine.requests == []
    assert listed.status_code == 404


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
async def test_json_bodies_are_served(content_type: str) -> None:
    async with served() as (c, _):
        r = await c.post(
            "/v1/chat/completions", content=CHAT, headers={"content-type": content_type}
        )
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://evil.example", False),
        ("http://evil.example:8000", False),
        ("null", False),
        ("http://localhost:3000", True),
        ("http://127.0.0.1:8000", True),
        ("http://[::1]:5173", True),
    ],
)
async def test_requests_from_foreign_origins_are_refused(origin: str, allowed: bool) -> None:
    async with served() as (c, engine):
        r = await c.post(
            "/v1/chat/completions",
            content=CHAT,
            headers={"content-type": "application/json", "origin": origin},
        )
        models = await c.get("/v1/models", headers={"origin": origin})
    if allowed:
        assert r.status_code == 200 and models.status_code == 200
    else:
        assert r.status_code == 403 and models.status_code == 403
        assert r.json()["error"]["code"] == "origin_not_allowed"
        assert engine.requests == []


async def test_configured_origins_are_accepted() -> None:
    async with served(allowed_origins=("https://app.example",)) as (c, _):
        ok = await c.get("/v1/models", headers={"origin": "https://app.example"})
        other = await c.get("/v1/models", headers={"origin": "https://other.example"})
    assert ok.status_code == 200 and other.status_code == 403


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("evil.example", False),
        ("evil.example:8000", False),
        ("127.0.0.1.evil.example", False),
        ("localhost:8000", True),
        ("127.0.0.1", True),
        ("[::1]:8000", True),
    ],
)
async def test_dns_rebinding_unknown_hosts_are_refused_without_keys(
    host: str, allowed: bool
) -> None:
    async with served() as (c, engine):
        r = await c.post(
            "/v1/agents/calculator/runs",
            content=RUN,
            headers={"content-type": "application/json", "host": host},
        )
        health = await c.get("/health", headers={"host": host})
    if allowed:
        assert r.status_code == 200 and health.status_code == 200
    else:
        assert r.status_code == 403 and health.status_code == 403
        assert r.json()["error"]["code"] == "host_not_allowed"
        assert "--allowed-host" in r.json()["error"]["message"]
        assert engine.requests == []


async def test_hosts_are_free_with_keys_and_configurable_without() -> None:
    keys = KeyRing([make_key("sk-test-0001")])
    auth = {"authorization": "Bearer sk-test-0001", "host": "api.example"}
    async with served(keys=keys) as (c, _):
        with_key = await c.get("/v1/models", headers=auth)
    async with served(allowed_hosts=("api.example",)) as (c, _):
        configured = await c.get("/v1/models", headers={"host": "api.example:443"})
        other = await c.get("/v1/models", headers={"host": "other.example"})
    async with served(allowed_hosts=("*",)) as (c, _):
        anything = await c.get("/v1/models", headers={"host": "other.example"})
    assert with_key.status_code == 200
    assert configured.status_code == 200 and other.status_code == 403
    assert anything.status_code == 200


def test_loopback_names_and_host_headers() -> None:
    assert all(
        is_loopback(h)
        for h in ("localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "a.localhost")
    )
    assert not any(
        is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.com", "localhost.example")
    )
    assert host_name("[::1]:8000") == "::1" and host_name("Example.COM:80") == "example.com"
    assert host_name("a:b") is None and host_name("[zz") is None
    guard = BrowserGuard(None, (), keys_enabled=False)
    assert guard.refusal("GET", {"host": "127.0.0.1:99999"}) is not None  # port out of range


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(["--builtin-agents", "", *argv])


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "myhost.example"])
def test_listening_beyond_loopback_needs_a_key(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTRT_API_KEYS", raising=False)
    with pytest.raises(ValueError, match="--insecure-no-auth"):
        build(parse("--host", host))
    _, with_key = build(parse("--host", host, "--api-key", "sk-1"))
    assert with_key.keys.enabled and with_key.allowed_hosts is None
    _, insecure = build(parse("--host", host, "--insecure-no-auth"))
    assert not insecure.keys.enabled
    if host in ("0.0.0.0", "::"):
        assert insecure.allowed_hosts is None  # any address: clients' names are unknown
    else:
        assert insecure.allowed_hosts == (host,)  # clients name the address it listens on


def test_loopback_needs_no_key_and_flags_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTRT_API_KEYS", raising=False)
    _, config = build(
        parse(
            "--allowed-host", "box.lan", "--allowed-origin", "https://ui.example",
            "--max-schema-nodes", "100",
        )
    )  # fmt: skip
    assert not config.keys.enabled
    assert config.allowed_hosts == ("box.lan",)
    assert config.allowed_origins == ("https://ui.example",)
    assert config.max_schema_nodes == 100
