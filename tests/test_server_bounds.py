"""One request must not stall the server: schemas are bounded (size, depth), so are message
counts and prompt lengths, and the remaining work runs off the event loop, so ``/health``
keeps answering while a heavy request is prepared (ScriptedEngine, in-process server)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from agentrt.engine import (
    ChatTokenizer,
    EngineError,
    EngineProxy,
    GenerateRequest,
    ScriptedEngine,
    TimingModel,
    TokenDelta,
)
from agentrt.engine._tokenizer import ByteCodec
from agentrt.server import ServerConfig, calculator_agent, create_app, running_server
from agentrt.server._limits import token_floor

pytestmark = pytest.mark.anyio

FAST = TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0005)
USER = [{"role": "user", "content": "hi"}]
# A stalled loop answers nothing for seconds; a free one within milliseconds. The bound
# leaves room for a shared machine's scheduling, and a stall repeats where noise does not.
HEALTH_BOUND_S = 0.25
TRIES = 3


def tool(name: str, n_props: int) -> dict[str, Any]:
    props = {f"p{j}": {"type": "string", "description": "a field"} for j in range(n_props)}
    return {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object", "properties": props}},
    }


def nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


@asynccontextmanager
async def served(engine: Any, **config: Any) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    app = create_app(engine, agents=[calculator_agent()], config=ServerConfig(**config))
    async with running_server(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as c:
        yield url, c


async def post_while_probing(
    url: str, client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> tuple[httpx.Response, float]:
    """POST ``body`` from another thread while this loop (the server's) probes ``/health``;
    the response and the slowest probe of the least disturbed of ``TRIES`` tries."""
    raw = json.dumps(body).encode()
    slowest: list[float] = []
    with httpx.Client(base_url=url, timeout=120) as sender:
        for _ in range(TRIES):
            response, latency = await _one_try(sender, client, path, raw)
            slowest.append(latency)
            if latency < HEALTH_BOUND_S:
                break
    return response, min(slowest)


async def _one_try(
    sender: httpx.Client, client: httpx.AsyncClient, path: str, raw: bytes
) -> tuple[httpx.Response, float]:
    done = threading.Event()
    out: list[httpx.Response] = []

    def send() -> None:
        try:
            out.append(sender.post(path, content=raw, headers={"content-type": "application/json"}))
        finally:
            done.set()

    latencies = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, send)
        while True:
            finished = done.is_set()
            t0 = time.perf_counter()
            assert (await client.get("/health")).status_code == 200
            latencies.append(time.perf_counter() - t0)
            if finished:
                break
    return out[0], max(latencies)


def error_of(r: httpx.Response) -> tuple[int, str | None, str | None]:
    err = r.json()["error"]
    return r.status_code, err["code"], err["param"]


async def test_huge_tool_schemas_get_a_400_at_once_and_health_keeps_answering() -> None:
    # The reported case: 4 tools x 5,000 properties stalled everything for 23 s.
    engine = ScriptedEngine(["ok"], timing=FAST)
    async with served(engine) as (url, c):
        body = {
            "model": "scripted",
            "messages": USER,
            "tools": [tool(f"t{i}", 5000) for i in range(4)],
        }
        r, slowest = await post_while_probing(url, c, "/v1/chat/completions", body)
    assert error_of(r) == (400, "schema_too_large", "tools[0].function.parameters")
    assert "5000 values" in r.json()["error"]["message"]
    assert slowest < HEALTH_BOUND_S
    assert engine.requests == []


async def test_schemas_within_the_bound_are_checked_off_the_event_loop() -> None:
    # ~4,700 values: accepted, and checking them (seconds of jsonschema) stalls nothing.
    engine = ScriptedEngine(["ok"] * TRIES, timing=FAST, max_model_len=200_000)
    async with served(engine) as (url, c):
        body = {
            "model": "scripted",
            "messages": USER,
            "tools": [tool(f"t{i}", 390) for i in range(4)],
        }
        body["tool_choice"] = "none"
        r, slowest = await post_while_probing(url, c, "/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    assert slowest < HEALTH_BOUND_S


@pytest.mark.parametrize("depth", [100, 300])
@pytest.mark.parametrize("where", ["tools", "response_format"])
async def test_deeply_nested_schemas_are_a_400_naming_the_field(where: str, depth: int) -> None:
    engine = ScriptedEngine(["ok"], timing=FAST)
    body: dict[str, Any] = {"model": "scripted", "messages": USER}
    if where == "tools":
        body["tools"] = [
            {"type": "function", "function": {"name": "f", "parameters": nested(depth)}}
        ]
        param = "tools[0].function.parameters"
    else:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": nested(depth)},
        }
        param = "response_format.json_schema.schema"
    async with served(engine) as (_, c):
        r = await c.post("/v1/chat/completions", json=body)
    assert error_of(r) == (400, "schema_too_deep", param)
    assert "nested more than 32 levels" in r.json()["error"]["message"]


async def test_schema_bounds_are_configurable() -> None:
    engine = ScriptedEngine(["ok"] * 2, timing=FAST)
    body = {"model": "scripted", "messages": USER, "tools": [tool("t", 20)], "tool_choice": "none"}
    async with served(engine, max_schema_nodes=66) as (_, c):  # 64, then 71 values
        small = await c.post("/v1/chat/completions", json=body)
        body["tools"] = [tool("t", 20), tool("u", 1)]
        over = await c.post("/v1/chat/completions", json=body)
    assert small.status_code == 200
    assert error_of(over) == (400, "schema_too_large", "tools[1].function.parameters")


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "object", "$schema": "https://example.com/mine"}, "not a JSON Schema draft"),
        ({"type": "object", "$schema": {"x": 1}}, "not a JSON Schema draft"),
        ({"type": "object", "properties": {"a": {"type": "strnig"}}}, "not a valid JSON schema"),
    ],
)
async def test_unknown_or_invalid_schemas_are_a_400(schema: dict[str, Any], problem: str) -> None:
    engine = ScriptedEngine(["ok"], timing=FAST)
    async with served(engine) as (_, c):
        r = await c.post(
            "/v1/chat/completions",
            json={
                "model": "scripted",
                "messages": USER,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "r", "schema": schema},
                },
            },
        )
    assert error_of(r) == (400, "invalid_value", "response_format.json_schema.schema")
    assert problem in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "user", "content": "a"}] * 200, "messages"),
        (
            [{"role": "user", "content": [{"type": "text", "text": ""}] * 600}],
            "messages[0].content",
        ),
    ],
)
async def test_more_messages_or_parts_than_the_context_holds_are_refused_before_validation(
    messages: list[dict[str, Any]], param: str
) -> None:
    engine = ScriptedEngine(["ok"], timing=FAST, max_model_len=512)
    async with served(engine) as (_, c):
        r = await c.post("/v1/chat/completions", json={"model": "scripted", "messages": messages})
    assert error_of(r) == (400, "context_length_exceeded", param)
    assert engine.requests == []


class CountingCodec(ByteCodec):
    """Test seam: a byte codec that counts the characters it was asked to encode."""

    def __init__(self) -> None:
        self.chars = 0

    def encode(self, text: str) -> list[int]:
        self.chars += len(text)
        return super().encode(text)


async def test_a_prompt_far_over_the_context_is_refused_after_encoding_a_context_worth() -> None:
    codec = CountingCodec()
    engine = ScriptedEngine(["ok"], timing=FAST, max_model_len=1024, tokenizer=ChatTokenizer(codec))
    huge = "word " * 400_000  # 2 MB
    async with served(engine) as (_, c):
        codec.chars = 0
        chat = await c.post(
            "/v1/chat/completions",
            json={"model": "scripted", "messages": [{"role": "user", "content": huge}]},
        )
        chat_chars, codec.chars = codec.chars, 0
        run = await c.post("/v1/agents/calculator/runs", json={"input": huge})
        run_chars = codec.chars
    assert error_of(chat) == (400, "context_length_exceeded", "messages")
    assert error_of(run) == (400, "context_length_exceeded", "input")
    # One piece of the text proves it; the rest is never encoded.
    assert chat_chars <= 20_000 and run_chars <= 20_000
    assert engine.requests == []


def test_token_floor_stops_at_the_limit_and_never_overcounts() -> None:
    seen: list[int] = []

    def encode(text: str) -> list[int]:
        seen.append(len(text))
        return list(text.encode())

    assert token_floor(["x" * 100_000], encode, 1000) >= 1000
    assert sum(seen) <= 16384  # one piece
    # Below the limit: a lower bound of the true count (pieces lose up to a slack each).
    texts = ["ab" * 20_000, "c" * 10]
    floor = token_floor(texts, encode, 10**9)
    total = sum(len(t) for t in texts)
    assert total - 4 * 16 <= floor <= total  # four pieces


class Refuses(EngineProxy):
    """Test seam: an engine that refuses every request as vLLM's input validation does."""

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]:
        raise ValueError("The provided JSON schema contains features not supported by xgrammar.")
        yield  # pragma: no cover


@pytest.mark.parametrize("stream", [False, True])
async def test_a_request_the_engine_refuses_is_a_400_not_a_500(stream: bool) -> None:
    engine = Refuses(ScriptedEngine(["ok"], timing=FAST), owns_inner=True)
    async with served(engine) as (_, c):
        r = await c.post(
            "/v1/chat/completions", json={"model": "scripted", "messages": USER, "stream": stream}
        )
    assert error_of(r) == (400, "invalid_request", None)
    assert "xgrammar" in r.json()["error"]["message"]
    await engine.aclose()


def _model_tokenizer() -> ChatTokenizer:
    from agentrt.engine._model import default_model_dir

    folder = default_model_dir()
    if not (Path(folder) / "tokenizer.json").is_file():
        pytest.skip("the default model is not prepared (scripts/setup.sh)")
    return ChatTokenizer.from_folder(folder)


def test_tokenizing_a_long_text_lets_other_threads_run() -> None:
    # The server tokenizes on a worker thread: that only helps if the GIL is released.
    tok = _model_tokenizer()
    text = "hello world, this is some text. " * 30_000  # ~1 MB
    ticks: list[float] = []
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        start = time.perf_counter()
        ids = tok.encode(text)
        took = time.perf_counter() - start
    finally:
        stop.set()
        t.join()
    during = [x for x in ticks if start <= x <= start + took]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert len(ids) > 100_000
    assert len(during) > 10 and max(gaps) < max(0.25, took / 4), (took, len(during), max(gaps))


class SlowStats(EngineProxy):
    """Test seam: statistics that wait for ``gate`` (when set) and then answer, or fail."""

    def __init__(self, inner: ScriptedEngine) -> None:
        super().__init__(inner, owns_inner=True)
        self.gate: anyio.Event | None = None
        self.fail = False

    async def stats(self) -> Any:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise EngineError("engine core died")
        return await super().stats()


async def test_health_answers_at_once_while_the_engine_is_busy_and_503_once_it_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An embedded engine answers statistics between steps, and a step can take seconds.
    engine = SlowStats(ScriptedEngine([], timing=FAST))
    async with served(engine) as (_, c):
        assert (await c.get("/health")).status_code == 200
        engine.gate = anyio.Event()  # busy: the probe waits
        t0 = time.perf_counter()
        busy = [(await c.get("/health")).status_code for _ in range(3)]
        took = time.perf_counter() - t0
        monkeypatch.setattr("agentrt.server._health.DEAD_AFTER_S", 0.0)
        hung = (await c.get("/health")).status_code  # no answer for too long: dead
        monkeypatch.setattr("agentrt.server._health.DEAD_AFTER_S", 10.0)
        engine.fail = True
        engine.gate.set()
        failed = await c.get("/health")
    assert busy == [200, 200, 200] and took < 1.0
    assert hung == 503
    assert failed.status_code == 503 and failed.json() == {"status": "engine_unavailable"}
    await engine.aclose()
