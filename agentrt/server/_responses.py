"""``/v1/responses``: the OpenAI Responses API, with server-side tools run by the agent loop.

    POST   /v1/responses          create (streamed as server-sent events with "stream")
    GET    /v1/responses/{id}     a stored response (the caller's own)
    DELETE /v1/responses/{id}

A request is read off the event loop (``_responses_plan``), becomes one turn of the agent
loop on its conversation (``_responses_turn``), and its events become output items and
stream events (``_responses_items``). A client that disconnects cancels the turn: the
engine request is aborted and running server-side tools are cancelled.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from agentrt._events import Emit, RunDone, stream_events
from agentrt._records import RunId, RunResult
from agentrt._turn import TurnRunner
from agentrt.engine import SessionId

from ._auth import ApiKey
from ._chat import parse_json
from ._config import ServerState, api_key_of, state_of
from ._errors import APIError
from ._limits import SchemaBudget
from ._responses_items import Json, OutputBuilder, new_id
from ._responses_models import ResponsesRequest
from ._responses_plan import ResponsesPlan, plan_responses
from ._responses_split import (
    continuation_split,
    latency_after,
    release_dropped,
    release_session,
)
from ._responses_turn import Stored, Turn, TurnSettings, now_s, prepare_turn, response_body
from ._sse import ClientGone, SSEResponse, data_frame, unless_disconnected

router = APIRouter()


@router.post("/v1/responses")
async def create_response(request: Request) -> Response:
    st = state_of(request)
    key = api_key_of(request)
    raw = await request.body()
    plan = await st.off_loop(functools.partial(_plan, st, raw))
    tenant = _tenant(key)
    previous = None
    session = SessionId(f"resp_{uuid.uuid4().hex[:16]}")
    if plan.body.previous_response_id is not None:
        previous = st.responses.get(tenant, plan.body.previous_response_id)
        if previous is None:
            raise _not_found(plan.body.previous_response_id, "previous_response_id")
        session = previous.session
        st.splits.cancel(session)  # the client is back: this request prefills the rest
    latency = latency_after(previous, st.clock.now())
    tok = st.engine.tokenizer.with_tool_format(st.config.tool_format)
    turn = await st.off_loop(functools.partial(prepare_turn, plan, previous, tok, session))
    run = _Run(st, turn, key, latency)
    if plan.body.stream:
        return SSEResponse(run.stream())
    try:
        body = await unless_disconnected(request.receive, run.complete())
    except ClientGone:
        return Response(status_code=499)  # nobody listens; the turn was cancelled
    if body["status"] == "failed" and body["error"]["code"] == "context_length_exceeded":
        raise APIError(400, body["error"]["message"], code="context_length_exceeded")
    return _json(body)


@router.get("/v1/responses/{response_id}")
async def get_response(response_id: str, request: Request) -> Response:
    stored = state_of(request).responses.get(_tenant(api_key_of(request)), response_id)
    if stored is None:
        raise _not_found(response_id, None)
    return _json(stored.body)


@router.delete("/v1/responses/{response_id}")
async def delete_response(response_id: str, request: Request) -> Response:
    st = state_of(request)
    stored = st.responses.pop(_tenant(api_key_of(request)), response_id)
    if stored is None:
        raise _not_found(response_id, None)
    await release_dropped(st.responses, st.splits, st.engine)  # its session, if the last
    return _json({"id": response_id, "object": "response.deleted", "deleted": True})


def _plan(st: ServerState, raw: bytes) -> ResponsesPlan:
    body = parse_json(raw, ResponsesRequest)
    if body.model not in st.model_names():
        raise APIError(
            404,
            f"model {body.model!r} does not exist; this server serves {st.model_name!r}",
            param="model",
            code="model_not_found",
        )
    return plan_responses(
        body,
        st.hosted,
        budget=SchemaBudget(st.config.max_schema_depth, st.config.max_schema_nodes),
        default_temperature=st.config.default_temperature,
        parallel_unset=st.config.parallel_unset,
    )


class _Run:
    """One request's turn, followed by an ``OutputBuilder``; stores the result."""

    def __init__(
        self, st: ServerState, turn: Turn, key: ApiKey | None, latency: float | None
    ) -> None:
        self.st, self.turn, self.key = st, turn, key
        self.tool_latency_s = latency
        self.id = new_id("resp")
        self.created = now_s()
        plan = turn.plan
        tok = turn.conversation.tokenizer
        self.out = OutputBuilder(
            tok.tool_format,
            plan.labels,
            turn.client_tools,
            tok.decode if plan.sampling.logprobs is not None else None,
        )
        self.runner = TurnRunner(
            turn.conversation,
            st.engine,
            turn.executor,
            TurnSettings(
                plan.tool_choice,
                plan.parallel,
                plan.sampling,
                key.cache_salt if key else None,
            ),
            run_id=RunId(new_id("run")),
            session=turn.session,
            emit=lambda _ev: None,
            client_tools=turn.client_tools,
            answer_constraint=plan.answer_constraint,
        )

    def body(self, result: RunResult | None = None) -> Json:
        return response_body(
            self.id,
            self.created,
            self.st.model_name,
            self.turn.plan,
            self.out.items,
            result,
            cut_call=self.out.cut_call,
        )

    async def events(self) -> AsyncGenerator[Json, None]:
        """The stream events of the whole turn, ``response.created`` to its end."""
        yield self.out.event("response.created", response=self.body())
        yield self.out.event("response.in_progress", response=self.body())
        # Closed explicitly: closing this stream cancels the turn (engine, tools) at once.
        async with aclosing(stream_events(self._drive)) as run_events:
            async for ev in run_events:
                if isinstance(ev, RunDone):
                    # FTR per turn in /metrics, beside the agent runs' (label "responses").
                    self.st.metrics.observe_run("responses", ev.result.status)
                    self.st.metrics.observe_result("responses", ev.result)
                    body = self.body(ev.result)
                    await self._settle(body, ev.result)
                    kind = {"completed": "completed", "incomplete": "incomplete"}.get(
                        body["status"], "failed"
                    )
                    yield self.out.event(f"response.{kind}", response=body)
                    return
                for out in self.out.on(ev):
                    yield out

    async def _drive(self, emit: Emit) -> RunResult:
        self.runner.emit = emit
        return await self.runner.run(None)

    async def stream(self) -> AsyncGenerator[bytes, None]:
        async with aclosing(self.events()) as events:
            async for ev in events:
                yield data_frame_named(ev)

    async def complete(self) -> Json:
        async with aclosing(self.events()) as events:
            async for ev in events:
                if ev["type"] in ("response.completed", "response.incomplete", "response.failed"):
                    body: Json = ev["response"]
                    return body
        raise RuntimeError("the turn ended without a final event")

    async def _settle(self, body: Json, result: RunResult) -> None:
        """Store the response; while it waits for the client's tools, prefill split A
        of its continuation, or (not stored) release its session at once."""
        st, turn = self.st, self.turn
        stored = Stored(
            body,
            turn.conversation,
            self.runner.waiting,
            turn.session,
            st.clock.now(),
            self.tool_latency_s,
        )
        # Only a turn paused for the client keeps its session (the loop released others).
        paused = result.status == "tool_calls"
        if turn.plan.body.store is False or body["status"] == "failed":
            if paused:
                await release_session(turn.session, st.splits, st.engine)
            return
        st.responses.put(_tenant(self.key), stored)
        await release_dropped(st.responses, st.splits, st.engine)  # LRU evictions
        last = result.iterations[-1] if result.iterations else None
        job = continuation_split(stored, last, self.key.cache_salt if self.key else None)
        if paused and job is not None and st.config.responses_split_prefill:
            st.splits.start(st.engine, job)


def data_frame_named(ev: Json) -> bytes:
    """A Responses stream event: named by its type, as OpenAI sends them."""
    return b"event: " + str(ev["type"]).encode() + b"\n" + data_frame(orjson.dumps(ev))


def _tenant(key: ApiKey | None) -> str:
    return key.name if key is not None else ""


def _not_found(response_id: str, param: str | None) -> APIError:
    return APIError(
        404,
        f"response {response_id!r} not found",
        param=param,
        code="not_found",
        type="invalid_request_error",
    )


def _json(body: Json) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")
