"""Agent runs over REST on ScriptedEngine: create, follow, fetch, continue, cancel; the stores."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from agentrt import Agent, SamplingOptions, Session, tool
from agentrt.engine import ScriptContext, ScriptedEngine, TimingModel
from agentrt.server import (
    KeyRing,
    ServerConfig,
    calculator_agent,
    create_app,
    make_key,
    running_server,
)
from agentrt.server._lru import IdleLRU
from agentrt.server._runs import RunRecord, RunStore, SessionStore

pytestmark = pytest.mark.anyio

FAST = TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0005)


def call(name: str, args: dict[str, Any]) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


def calculator_script(ctx: ScriptContext) -> str:
    """Call the tool for a new question; answer once the last message is its result."""
    last = ctx.prompt_text.rsplit("<|im_start|>user\n", 1)[-1]
    if last.startswith("<tool_response>"):
        result = last.split("\n")[1]
        return f"The result is {result}."
    expr = last.split("<|im_end|>")[0].rstrip("?")
    return call("calculator", {"expression": expr})


@tool(timeout_s=60)
async def slow_lookup(key: str) -> str:
    """Look a key up in a very slow store.

    Args:
        key: what to look up
    """
    await anyio.sleep(60)
    return "never"


SLOW = Agent(
    name="slow",
    instructions="Look things up.",
    tools=[slow_lookup],
    tool_choice="required",
    sampling=SamplingOptions(max_tokens=64),
)


@asynccontextmanager
async def served(
    engine: ScriptedEngine, config: ServerConfig | None = None, agents: list[Agent] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine, agents=agents or [calculator_agent(), SLOW], config=config)
    async with running_server(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


async def events_of(
    client: httpx.AsyncClient, path: str, **kw: Any
) -> list[tuple[int, str, dict[str, Any]]]:
    """(id, event, data) of every event of an SSE response."""
    out: list[tuple[int, str, dict[str, Any]]] = []
    method = "POST" if path.endswith("/runs") else "GET"
    async with client.stream(method, path, **kw) as r:
        assert r.status_code == 200, await r.aread()
        eid, name = -1, ""
        async for line in r.aiter_lines():
            if line.startswith("id: "):
                eid = int(line[4:])
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                out.append((eid, name, json.loads(line[6:])))
    return out


async def test_agents_are_listed_with_their_tools() -> None:
    engine = ScriptedEngine([], timing=FAST)
    async with served(engine) as c:
        listed = (await c.get("/v1/agents")).json()
        one = (await c.get("/v1/agents/calculator")).json()
        missing = await c.get("/v1/agents/nope")
    assert [a["id"] for a in listed["data"]] == ["calculator", "slow"]
    assert one["tools"][0]["function"]["name"] == "calculator"
    assert one["tool_choice"] == "required"
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "agent_not_found"
    await engine.aclose()


async def test_streamed_run_sends_every_event_in_order_then_the_result_is_fetchable() -> None:
    engine = ScriptedEngine(calculator_script, timing=FAST)
    async with served(engine) as c:
        events = await events_of(
            c, "/v1/agents/calculator/runs", json={"input": "6*7?", "stream": True}
        )
        run_id = events[0][2]["run_id"]
        run = (await c.get(f"/v1/runs/{run_id}")).json()
    kinds = [name for _, name, _ in events if name != "token"]
    assert kinds == [
        "run_started",
        "tool_call",
        "tool_started",
        "tool_finished",
        "iteration_finished",
        "final_answer_started",
        "iteration_finished",
        "done",
    ]
    assert [eid for eid, _, _ in events] == list(range(len(events)))
    tool_call = next(d for _, n, d in events if n == "tool_call")
    assert (tool_call["name"], tool_call["arguments"]) == ("calculator", {"expression": "6*7"})
    finished = next(d for _, n, d in events if n == "tool_finished")
    assert finished["result"] == {
        "call_id": tool_call["call_id"],
        "name": "calculator",
        "content": "42",
        "kind": "ok",
    }
    assert events[0][2]["t"] == 0.0 and all(d["t"] >= 0 for _, n, d in events if n == "token")
    assert run["status"] == "completed" and run["final_text"] == "The result is 42."
    assert run["events"] == len(events)
    result = run["result"]
    assert result["run_id"] == run_id and result["ftr_s"] > 0
    assert [m["role"] for m in result["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert result["messages"][2]["tool_calls"][0]["function"]["name"] == "calculator"
    await engine.aclose()


async def test_run_created_without_stream_can_be_followed_and_resumed_by_event_id() -> None:
    engine = ScriptedEngine(calculator_script, timing=FAST)
    async with served(engine) as c:
        created = (await c.post("/v1/agents/calculator/runs", json={"input": "2+2"})).json()
        assert created["status"] == "running" and created["object"] == "agent.run"
        all_events = await events_of(c, f"/v1/runs/{created['id']}/events")
        tail = await events_of(
            c, f"/v1/runs/{created['id']}/events", headers={"last-event-id": "3"}
        )
        by_query = await events_of(c, f"/v1/runs/{created['id']}/events?after=3")
        bad = await c.get(f"/v1/runs/{created['id']}/events?after=x")
    assert all_events[-1][1] == "done"
    assert tail == by_query == all_events[4:]
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "after"
    await engine.aclose()


async def test_session_id_continues_the_conversation_on_the_same_token_log() -> None:
    engine = ScriptedEngine(calculator_script, timing=FAST)
    async with served(engine) as c:
        first = (await c.post("/v1/agents/calculator/runs", json={"input": "2+2"})).json()
        await events_of(c, f"/v1/runs/{first['id']}/events")
        n_before = len(engine.requests)
        second = (
            await c.post(
                "/v1/agents/calculator/runs",
                json={"input": "3+3", "session_id": first["session_id"]},
            )
        ).json()
        await events_of(c, f"/v1/runs/{second['id']}/events")
        run2 = (await c.get(f"/v1/runs/{second['id']}")).json()
    assert second["session_id"] == first["session_id"]
    prev_last, next_first = engine.requests[n_before - 1].prompt, engine.requests[n_before].prompt
    assert next_first[: len(prev_last)] == prev_last  # the log only grew
    assert run2["result"]["cached_tokens"][0] >= len(prev_last) // 16 * 16 - 16
    assert [m["role"] for m in run2["result"]["messages"]][:5] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert run2["final_text"] == "The result is 6."
    await engine.aclose()


async def test_session_errors_unknown_busy_and_other_agent() -> None:
    engine = ScriptedEngine(lambda ctx: call("slow_lookup", {"key": "k"}), timing=FAST)
    async with served(engine) as c:
        unknown = await c.post(
            "/v1/agents/slow/runs", json={"input": "x", "session_id": "sess_nope"}
        )
        running = (await c.post("/v1/agents/slow/runs", json={"input": "x"})).json()
        busy = await c.post(
            "/v1/agents/slow/runs", json={"input": "y", "session_id": running["session_id"]}
        )
        await c.post(f"/v1/runs/{running['id']}/cancel")
        dropped = await c.post(
            "/v1/agents/slow/runs", json={"input": "y", "session_id": running["session_id"]}
        )
        extra = await c.post("/v1/agents/slow/runs", json={"input": "y", "colour": "red"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "session_not_found"
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "session_busy"
    # A cancelled turn may leave the log mid-turn: its conversation is not continued.
    assert dropped.status_code == 404
    assert extra.status_code == 400 and extra.json()["error"]["param"] == "colour"
    await engine.aclose()


async def test_cancel_stops_a_run_in_its_slow_tool_and_frees_everything() -> None:
    engine = ScriptedEngine(lambda ctx: call("slow_lookup", {"key": "k"}), timing=FAST)
    async with served(engine, ServerConfig(max_concurrency=1)) as c:
        run = (await c.post("/v1/agents/slow/runs", json={"input": "find k"})).json()
        async with c.stream("GET", f"/v1/runs/{run['id']}/events") as r:
            async for line in r.aiter_lines():
                if line == "event: tool_started":
                    break
        full = await c.post("/v1/agents/slow/runs", json={"input": "again"})
        with anyio.fail_after(10):
            cancelled = (await c.post(f"/v1/runs/{run['id']}/cancel")).json()
        events = await events_of(c, f"/v1/runs/{run['id']}/events")
        again = await c.post(f"/v1/runs/{run['id']}/cancel")
        freed = await c.post("/v1/agents/slow/runs", json={"input": "again"})
        await c.post(f"/v1/runs/{freed.json()['id']}/cancel")
        metrics = (await c.get("/metrics")).text
    assert full.status_code == 429  # the running run held the only slot
    assert cancelled["status"] == "cancelled" and cancelled["error"] == "the run was cancelled"
    assert events[-1][1] == "cancelled" and "done" not in [n for _, n, _ in events]
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_not_running"
    assert freed.status_code == 200
    assert (await engine.stats()).num_running == 0
    assert 'agentrt_agent_runs_total{agent="slow",status="cancelled"} 2.0' in metrics
    await engine.aclose()


async def test_client_leaving_a_streamed_run_cancels_it() -> None:
    engine = ScriptedEngine(lambda ctx: call("slow_lookup", {"key": "k"}), timing=FAST)
    async with served(engine) as c:
        async with c.stream(
            "POST", "/v1/agents/slow/runs", json={"input": "x", "stream": True}
        ) as r:
            run_id = r.headers["x-agentrt-run-id"]
            async for line in r.aiter_lines():
                if line == "event: tool_started":
                    break
        with anyio.fail_after(10):
            while (await c.get(f"/v1/runs/{run_id}")).json()["status"] == "running":
                await anyio.sleep(0.01)
        assert (await c.get(f"/v1/runs/{run_id}")).json()["status"] == "cancelled"
    await engine.aclose()


async def test_runs_and_sessions_belong_to_their_api_key() -> None:
    engine = ScriptedEngine(calculator_script, timing=FAST)
    keys = KeyRing([make_key("sk-a", "a"), make_key("sk-b", "b")])
    a, b = {"authorization": "Bearer sk-a"}, {"authorization": "Bearer sk-b"}
    async with served(engine, ServerConfig(keys=keys)) as c:
        run = (await c.post("/v1/agents/calculator/runs", json={"input": "1+1"}, headers=a)).json()
        await events_of(c, f"/v1/runs/{run['id']}/events", headers=a)
        theirs = await c.get(f"/v1/runs/{run['id']}", headers=b)
        session = await c.post(
            "/v1/agents/calculator/runs",
            headers=b,
            json={"input": "2+2", "session_id": run["session_id"]},
        )
        mine = await c.get(f"/v1/runs/{run['id']}", headers=a)
    assert theirs.status_code == 404 and session.status_code == 404
    assert mine.status_code == 200
    assert engine.requests[0].cache_salt is not None  # the tenant's KV partition
    await engine.aclose()


async def test_unknown_run_is_a_404_everywhere() -> None:
    engine = ScriptedEngine([], timing=FAST)
    async with served(engine) as c:
        for r in (
            await c.get("/v1/runs/run_x"),
            await c.get("/v1/runs/run_x/events"),
            await c.post("/v1/runs/run_x/cancel"),
        ):
            assert r.status_code == 404
            assert r.json()["error"] == {
                "message": "run 'run_x' does not exist (or has expired)",
                "type": "invalid_request_error",
                "param": "run_id",
                "code": "run_not_found",
            }
    await engine.aclose()


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_idle_lru_evicts_least_recently_used_then_expired() -> None:
    clock = FakeClock()
    lru: IdleLRU[str, int] = IdleLRU(2, ttl_s=10, clock=clock)
    lru.put("a", 1)
    clock.t = 1
    lru.put("b", 2)
    clock.t = 2
    assert lru.get("a") == 1  # a is now the most recent
    lru.put("c", 3)
    assert list(lru.keys()) == ["a", "c"]  # b was least recently used
    clock.t = 12.5
    assert lru.get("a") is None  # idle 10.5 s > ttl
    assert list(lru.keys()) == []  # c (idle 10.5 s too) went with it
    lru.check_integrity()


async def test_run_store_keeps_running_runs_and_bounds_finished_ones() -> None:
    clock = FakeClock()
    store = RunStore(max_finished=2, ttl_s=100, clock=clock)
    recs = [RunRecord("a", "sess", None, "x") for _ in range(4)]  # type: ignore[arg-type]
    for r in recs:
        store.add(r)
    for r in recs[:3]:
        r.finish("completed")
        store.retire(r)
        store.check_integrity()
    assert len(store) == 3  # 1 running + 2 finished
    with pytest.raises(Exception, match="does not exist"):
        store.get(recs[0].id, None)
    assert store.get(recs[3].id, None) is recs[3]
    clock.t = 1000
    assert store.get(recs[3].id, None) is recs[3]  # running runs never expire
    assert len(store) == 1


async def test_session_store_never_evicts_a_busy_session() -> None:
    store = SessionStore(max_idle=1, ttl_s=100)
    agent = calculator_agent()
    e1 = store.start(Session(agent), "calculator", None)
    e2 = store.start(Session(agent), "calculator", None)
    store.release(e1, keep=True)
    store.release(e2, keep=True)  # capacity 1: e1 (idle, older) goes
    store.check_integrity()
    assert len(store) == 1
    assert store.resume(e2.id, "calculator", None) is e2
    store.release(e2, keep=False)
    assert len(store) == 0
