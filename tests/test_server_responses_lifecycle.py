"""``/v1/responses`` engine-side lifecycle on ScriptedEngine, through the ``openai`` client
(issues 11, 12): split A of a continuation prefilled while the client runs its function
tools, the engine session released when its stored responses leave the store (DELETE,
TTL, LRU), and a call cut by ``max_output_tokens`` giving an ``incomplete`` response."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai
import pytest
from fastapi import FastAPI
from server_clock import FakeClock
from test_server_chat_codesign import Recorder
from test_server_responses_scripted import ADD, reply

from agentrt.engine import ScriptedEngine, SessionId, TimingModel
from agentrt.server import ServerConfig, create_app, running_server
from agentrt.server._config import ServerState

pytestmark = pytest.mark.anyio

FAST = TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0005)


@asynccontextmanager
async def served(
    clock: FakeClock | None = None, **config: Any
) -> AsyncIterator[tuple[openai.AsyncOpenAI, Recorder, ServerState]]:
    eng = Recorder(ScriptedEngine(reply, timing=FAST))
    app: FastAPI = create_app(eng, agents=[], config=ServerConfig(**config), clock=clock)
    async with (
        running_server(app) as url,
        openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0) as c,
    ):
        yield c, eng, app.state.server


def session_of(eng: Recorder) -> SessionId:
    """The engine session of the first request (the conversation under test)."""
    session = eng.inner.requests[0].session
    assert session is not None
    return session


async def test_function_calls_prefill_split_a_that_the_continuation_hits() -> None:
    async with served() as (c, eng, st):
        r1 = await c.responses.create(model="scripted", input="add them", tools=[ADD])
        fc = r1.output[0]
        assert fc.type == "function_call"
        await st.splits.settled()
        r2 = await c.responses.create(
            model="scripted",
            previous_response_id=r1.id,
            tools=[ADD],
            input=[{"type": "function_call_output", "call_id": fc.call_id, "output": "3"}],
        )
    assert r2.output_text == "Result: 3"
    (split,) = eng.prefills
    first, second = (r for r in eng.inner.requests if r.forced_output is None)
    assert split.background and split.session == first.session == second.session
    opening = eng.tokenizer.encode("<|im_start|>user\n<tool_response>\n")
    assert split.prompt[-len(opening) :] == tuple(opening)
    assert second.prompt[: len(split.prompt)] == split.prompt
    # Without the split only the first call's prompt and output could be cached.
    block = eng.info.block_size
    assert r1.usage is not None and r2.usage is not None
    held = r1.usage.input_tokens + r1.usage.output_tokens - 1
    cached = r2.usage.input_tokens_details.cached_tokens
    assert cached == len(split.prompt) // block * block > held // block * block
    assert st.splits.outcomes == {"done": 1}


async def test_split_prefill_switch_off() -> None:
    async with served(responses_split_prefill=False) as (c, eng, st):
        await c.responses.create(model="scripted", input="add them", tools=[ADD])
        await st.splits.settled()
    assert eng.prefills == []


async def test_a_text_answer_prefills_nothing() -> None:
    async with served() as (c, eng, st):
        await c.responses.create(model="scripted", input="hi", tools=[ADD])
        await st.splits.settled()
    assert eng.prefills == [] and st.splits.outcomes == {}


async def test_delete_releases_the_waiting_conversation() -> None:
    async with served() as (c, eng, _):
        r1 = await c.responses.create(model="scripted", input="add them", tools=[ADD])
        assert eng.releases == []  # waiting for the client's tool: the session lives on
        await c.responses.delete(r1.id)
        assert eng.releases == [session_of(eng)]


async def test_deleting_an_earlier_response_keeps_the_conversation() -> None:
    async with served() as (c, eng, _):
        r1 = await c.responses.create(model="scripted", input="add them", tools=[ADD])
        call_id = r1.output[0].call_id  # type: ignore[union-attr]
        r2 = await c.responses.create(
            model="scripted",
            previous_response_id=r1.id,
            tools=[ADD],
            input=[
                {"type": "function_call_output", "call_id": call_id, "output": "3"},
                {"role": "user", "content": "add again"},
            ],
        )
        assert r2.output[0].type == "function_call"  # waiting again, same session
        await c.responses.delete(r1.id)
        assert eng.releases == []
        await c.responses.delete(r2.id)
        assert eng.releases == [session_of(eng)]


async def test_ttl_expiry_releases_the_conversation() -> None:
    clock = FakeClock()
    async with served(clock, response_ttl_s=60.0) as (c, eng, _):
        r1 = await c.responses.create(model="scripted", input="add them", tools=[ADD])
        await clock.advance(40.0)
        assert eng.releases == []
        await clock.advance(40.0)
        assert eng.releases == [session_of(eng)]
        with pytest.raises(openai.NotFoundError):
            await c.responses.retrieve(r1.id)


async def test_lru_eviction_releases_the_conversation() -> None:
    async with served(max_responses=1) as (c, eng, _):
        await c.responses.create(model="scripted", input="add them", tools=[ADD])
        waiting = session_of(eng)
        await c.responses.create(model="scripted", input="hi")  # evicts the first
    assert waiting in eng.releases


async def test_an_unstored_waiting_response_is_released_at_once() -> None:
    async with served() as (c, eng, st):
        await c.responses.create(model="scripted", input="add them", tools=[ADD], store=False)
        await st.splits.settled()
    assert eng.releases == [session_of(eng)]
    assert eng.prefills == []


async def test_a_call_cut_by_max_output_tokens_is_incomplete() -> None:
    async with served() as (c, _, _st):
        r = await c.responses.create(
            model="scripted", input="add them", tools=[ADD], max_output_tokens=30
        )
    assert r.status == "incomplete"
    assert r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"
    (item,) = r.output
    assert item.type == "function_call" and item.status == "incomplete" and item.name == "add"
    assert r.error is None


async def test_a_streamed_cut_call_ends_with_response_incomplete() -> None:
    async with served() as (c, _, _st):
        stream = await c.responses.create(
            model="scripted", input="add them", tools=[ADD], max_output_tokens=30, stream=True
        )
        events = [ev async for ev in stream]
    kinds = [e.type for e in events]
    assert kinds[-1] == "response.incomplete"
    assert "response.function_call_arguments.done" not in kinds  # the arguments never closed
    final = events[-1].response  # type: ignore[union-attr]
    assert final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens"
    assert final.output[0].status == "incomplete"
