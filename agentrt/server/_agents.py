"""Server-side agent runs: list agents, start a run, follow its events, fetch it, cancel it.

A run is one turn of an SDK ``Session`` driven by a task of the server, so it gets every
co-design optimization of the SDK unchanged. Its events are recorded as SSE frames in a
``RunRecord`` that any number of clients can follow. ``session_id`` continues a
conversation: the same ``Session`` object, so the turn extends its token log and the
engine's prefix cache still holds everything before it.

Who owns a run: created with ``stream: true``, the connection does (the client leaving
cancels it); otherwise the server does, until it ends or ``/cancel`` is called.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import aclosing

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from agentrt import Agent, RunDone, RunResult, Session
from agentrt._tracing import incoming_context
from agentrt.engine import Engine

from ._chat import parse_json
from ._config import ServerState, api_key_of, state_of
from ._errors import APIError, describe
from ._limits import token_floor
from ._runs import RunRecord, RunState, SessionEntry
from ._sse import SSEResponse

router = APIRouter()
_CANCEL_WAIT_S = 10.0


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    input: str = Field(min_length=1)
    session_id: str | None = None
    stream: bool = False


def _json(data: object, status: int = 200) -> Response:
    import orjson

    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


@router.get("/v1/agents")
async def list_agents(request: Request) -> Response:
    reg = state_of(request).agents
    return _json({"object": "list", "data": [reg.describe(n) for n in reg.names()]})


@router.get("/v1/agents/{name}")
async def get_agent(name: str, request: Request) -> Response:
    return _json(state_of(request).agents.describe(name))


@router.post("/v1/agents/{name}/runs")
async def create_run(name: str, request: Request) -> Response:
    st = state_of(request)
    key = api_key_of(request)
    owner = key.name if key else None
    agent = st.agents.for_key(name, key)
    raw = await request.body()
    body = await st.off_loop(functools.partial(_prepare_run, raw, agent))
    if not st.limiter.try_acquire():
        raise st.limiter.too_busy()
    try:
        if body.session_id is None:
            entry = st.sessions.start(Session(agent), name, owner)
        else:
            entry = st.sessions.resume(body.session_id, name, owner)
    except BaseException:
        st.limiter.release()  # the run never started
        raise
    rec = RunRecord(name, entry.id, owner, body.input)
    st.runs.add(rec)
    # The run continues the trace of the request's traceparent, when tracing is on.
    trace_ctx = incoming_context(request.headers)
    task = asyncio.get_running_loop().create_task(_drive(st, rec, entry), context=trace_ctx)
    task.add_done_callback(functools.partial(_settle_run, st, rec, entry))
    rec.task = task
    if not body.stream:
        return _json(rec.as_json())
    headers = {"x-agentrt-run-id": rec.id, "x-agentrt-session-id": entry.id}
    return SSEResponse(_owned_stream(rec), headers=headers)


def _prepare_run(raw: bytes, agent: Agent) -> RunCreate:
    """Decode the body and bound the input (off the loop: both cost time per byte).

    The SDK renders the input on the event loop, so an input too long for the context
    must be refused here, by tokenizing it on this thread, not discovered there.
    """
    body = parse_json(raw, RunCreate)
    engine = agent.engine
    if isinstance(engine, Engine):
        limit = engine.info.max_model_len
        n = token_floor([body.input], engine.tokenizer.encode, limit)
        if n >= limit:
            raise APIError(
                400,
                f"input: at least {n} tokens, more than the context of {limit} tokens",
                param="input",
                code="context_length_exceeded",
            )
    return body


@router.get("/v1/runs/{run_id}")
async def get_run(run_id: str, request: Request) -> Response:
    return _json(_find(request, run_id).as_json())


@router.get("/v1/runs/{run_id}/events")
async def run_events(run_id: str, request: Request) -> Response:
    """Every event of the run from the start (or after ``Last-Event-ID`` / ``?after=``)."""
    rec = _find(request, run_id)
    raw = request.query_params.get("after", request.headers.get("last-event-id", "-1"))
    try:
        after = int(raw)
    except ValueError:
        raise APIError(
            400,
            f"after: expected an event id (an integer), got {raw!r}",
            param="after",
            code="invalid_value",
        ) from None
    return SSEResponse(rec.follow(after))


@router.post("/v1/runs/{run_id}/cancel")
async def cancel_run(run_id: str, request: Request) -> Response:
    rec = _find(request, run_id)
    if rec.finished:
        raise APIError(
            409,
            f"run {run_id!r} already ended with status {rec.state!r}",
            param="run_id",
            code="run_not_running",
        )
    await _cancel(rec)
    return _json(rec.as_json())


def _find(request: Request, run_id: str) -> RunRecord:
    key = api_key_of(request)
    return state_of(request).runs.get(run_id, key.name if key else None)


async def _drive(st: ServerState, rec: RunRecord, entry: SessionEntry) -> RunState:
    """Run one turn, recording its events; returns the SDK's final status."""
    result: RunResult | None = None
    async with aclosing(entry.session.stream(rec.input)) as events:
        async for event in events:
            rec.add_event(event)
            if isinstance(event, RunDone):
                result = event.result
    assert result is not None, "the SDK stream ended without RunDone"
    st.metrics.observe_result(rec.agent, result)
    return result.status


def _settle_run(
    st: ServerState, rec: RunRecord, entry: SessionEntry, task: asyncio.Task[RunState]
) -> None:
    """The run's task ended (however, even cancelled before it started): retire the run.

    A done-callback rather than a ``finally``: it runs in every case, and before anyone
    awaiting the task resumes.
    """
    if task.cancelled():
        rec.finish("cancelled", "the run was cancelled")
    elif (exc := task.exception()) is not None:
        rec.finish("error", describe(exc))  # the cause, not the task group around it
    else:
        rec.finish(task.result())
    # A turn that did not end cleanly may leave the token log mid-turn: drop the session.
    st.sessions.release(entry, keep=rec.state in ("completed", "max_iterations"))
    st.limiter.release()
    st.runs.retire(rec)
    st.metrics.observe_run(rec.agent, rec.state)


async def _cancel(rec: RunRecord) -> None:
    """Cancel the run's task and wait (bounded) until it has cleaned up."""
    task = rec.task
    if task is None or task.done():
        return
    task.cancel()
    await asyncio.wait((task,), timeout=_CANCEL_WAIT_S)


async def _owned_stream(rec: RunRecord) -> AsyncIterator[bytes]:
    try:
        async for frame in rec.follow():
            yield frame
    finally:
        if not rec.finished:
            await _cancel(rec)  # the client who started the run left


async def cancel_all(st: ServerState) -> None:
    """Server shutdown: cancel every running run and wait for their clean-up."""
    for rec in st.runs.running():
        await _cancel(rec)
