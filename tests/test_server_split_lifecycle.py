"""The chat endpoint's session lifecycle on ScriptedEngine (issues 11, 14): split prefill
decided by the agent loop's policy and sent as background work, cancelled when the
client is back, and sessions idle past their TTL released by the server's sweeper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from server_clock import FakeClock
from test_server_chat_codesign import (
    ANSWER,
    CALL_TEXT,
    SYSTEM,
    USER,
    Recorder,
    calls,
    echoed,
    post,
)

from agentrt.engine import (
    BACKGROUND_PRIORITY,
    EngineLoad,
    PrefillRequest,
    PrefillStats,
    ScriptedEngine,
    TimingModel,
)
from agentrt.server import ServerConfig, create_app, running_server
from agentrt.server._config import ServerState

pytestmark = pytest.mark.anyio

FAST = TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0005)
CALL_AGAIN = '<tool_call>\n{"name":"add","arguments":{"a":3,"b":4}}\n</tool_call>'


@asynccontextmanager
async def served(
    eng: Recorder, clock: FakeClock | None = None, **config: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, ServerState]]:
    app: FastAPI = create_app(eng, agents=[], config=ServerConfig(**config), clock=clock)
    async with running_server(app) as url, httpx.AsyncClient(base_url=url) as c:
        yield c, app.state.server


async def next_round(c: httpx.AsyncClient, first: dict[str, Any]) -> dict[str, Any]:
    """The client ran the tool of ``first``: send its result."""
    msg = echoed(first["choices"][0]["message"], compact=True)
    result = {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"], "content": "3"}
    return await post(c, [SYSTEM, USER, msg, result])


async def test_split_prefill_is_background_work() -> None:
    eng = Recorder(ScriptedEngine([CALL_TEXT, ANSWER], timing=FAST))
    async with served(eng) as (c, st):
        first = await post(c, [SYSTEM, USER])
        await st.splits.settled()
        await next_round(c, first)
    (split,) = eng.prefills
    assert split.background
    sent = [r for r in eng.inner.requests if r.forced_output is not None]
    assert [r.priority for r in sent] == [BACKGROUND_PRIORITY]
    assert st.splits.outcomes == {"done": 1}


class Saturated(Recorder):
    """An engine whose last steps were full: no spare capacity, though nothing waits."""

    async def load(self) -> EngineLoad:
        return EngineLoad(waiting=0, running=1, full=True)


async def test_no_split_prefill_on_a_saturated_engine() -> None:
    eng = Saturated(ScriptedEngine([CALL_TEXT, ANSWER], timing=FAST))
    async with served(eng) as (c, st):
        first = await post(c, [SYSTEM, USER])
        await st.splits.settled()
        await next_round(c, first)
        metrics = (await c.get("/metrics")).text
    assert eng.prefills == []
    assert st.splits.outcomes == {"saturated": 1}
    assert 'agentrt_split_prefills_total{outcome="saturated"} 1.0' in metrics


async def test_tools_faster_than_the_prefill_skip_it() -> None:
    """The first gap teaches the session that its tools take 10 ms; split A takes longer
    to prefill at the engine's 1000 tokens/s, so the second round skips it."""
    clock = FakeClock()
    slow_prefill = TimingModel(prefill_s_per_token=0.001, decode_step_s=0.0005)
    eng = Recorder(ScriptedEngine([CALL_TEXT, CALL_AGAIN, ANSWER], timing=slow_prefill))
    async with served(eng, clock) as (c, st):
        first = await post(c, [SYSTEM, USER])
        await st.splits.settled()  # no latency known yet: the default (5 s) is longer
        assert st.splits.outcomes == {"done": 1}
        await clock.advance(0.01)  # the client's tool
        await next_round(c, first)
        await st.splits.settled()
        metrics = (await c.get("/metrics")).text
    assert len(eng.prefills) == 1
    assert st.splits.outcomes == {"done": 1, "tools_faster": 1}
    for outcome in ("done", "tools_faster"):
        assert f'agentrt_split_prefills_total{{outcome="{outcome}"}} 1.0' in metrics


class Stuck(Recorder):
    """An engine whose split prefills never finish, until cancelled."""

    def __init__(self, inner: ScriptedEngine) -> None:
        super().__init__(inner)
        self.started, self.cancelled = anyio.Event(), anyio.Event()

    async def prefill(self, request: PrefillRequest) -> PrefillStats:
        self.started.set()
        try:
            await anyio.sleep_forever()
        finally:
            self.cancelled.set()
        raise AssertionError("unreachable")


async def test_the_next_request_cancels_a_split_prefill_in_flight() -> None:
    eng = Stuck(ScriptedEngine([CALL_TEXT, ANSWER], timing=FAST))
    async with served(eng) as (c, st):
        first = await post(c, [SYSTEM, USER])
        with anyio.fail_after(10):
            await eng.started.wait()
        second = await next_round(c, first)  # not held up by the stuck prefill
        with anyio.fail_after(10):
            await eng.cancelled.wait()
    assert second["choices"][0]["message"]["content"] == ANSWER
    assert st.splits.outcomes == {"cancelled": 1}


async def test_an_idle_session_is_released_after_its_ttl() -> None:
    clock = FakeClock()
    eng = Recorder(ScriptedEngine([CALL_TEXT], timing=FAST))
    async with served(eng, clock, chat_session_idle_s=30.0) as (c, st):
        await post(c, [SYSTEM, USER])  # tool calls: the session waits for its client
        session = calls(eng)[0].session
        await st.splits.settled()
        await clock.advance(20.0)
        assert eng.releases == []  # still within its TTL
        await clock.advance(20.0)
        assert eng.releases == [session]
        await clock.advance(60.0)
        assert eng.releases == [session]  # released once


async def test_a_session_in_use_is_not_released() -> None:
    clock = FakeClock()
    eng = Recorder(ScriptedEngine([CALL_TEXT, CALL_AGAIN], timing=FAST))
    async with served(eng, clock, chat_session_idle_s=30.0) as (c, _):
        first = await post(c, [SYSTEM, USER])
        await clock.advance(20.0)
        await next_round(c, first)  # back within the TTL: the clock restarts
        await clock.advance(20.0)
    assert eng.releases == []
    assert calls(eng)[1].session == calls(eng)[0].session
