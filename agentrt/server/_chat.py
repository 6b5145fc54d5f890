"""``/v1/chat/completions`` (client-side tools), ``/v1/models``: OpenAI-compatible endpoints.

A request's body is decoded, validated, rendered and tokenized on a worker thread (see
``ServerState.off_loop``), within the bounds of ``_limits``; it becomes one
``engine.generate`` call (see ``_chat_plan``); its deltas go
through the shared assembler (``_chat_output``) either into one JSON response or into
``chat.completion.chunk`` events. Chunks are encoded from a pre-built prefix because
they are written once per token: this is the server's per-token hot path.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing
from typing import Any, TypeVar

import orjson
import pydantic
from fastapi import APIRouter, Request
from starlette.responses import Response

from agentrt._tracing import traced_generate
from agentrt.engine import PromptTooLongError, RequestStats, TokenDelta, TokenLogprob

from ._auth import ApiKey
from ._chat_logprobs import choice_logprobs, chunk_logprobs
from ._chat_output import CallOut, ChoiceAssembler, Piece
from ._chat_plan import ChatPlan, plan_chat
from ._chat_session import Outcome
from ._config import ServerState, api_key_of, state_of
from ._echo import scope_of
from ._errors import APIError, from_validation
from ._limits import SchemaBudget, check_counts
from ._openai_models import (
    AssistantMessageOut,
    ChatCompletionOut,
    ChatCompletionRequest,
    ChoiceLogprobsOut,
    ChoiceOut,
    FunctionCallOut,
    ModelListOut,
    ModelOut,
    ToolCallOut,
    usage,
)
from ._sse import DONE, ClientGone, SSEResponse, unless_disconnected

router = APIRouter()
M = TypeVar("M", bound=pydantic.BaseModel)
_STARTED = int(time.time())


def parse_json(
    raw: bytes, model: type[M], check: Callable[[dict[str, Any]], None] | None = None
) -> M:
    """The body as ``model``; 400 naming the problem when it is not JSON or not valid.

    Synchronous and CPU-bound: callers run it off the event loop (``ServerState.off_loop``).
    ``check`` sees the decoded object before the model validates it (cheap bounds first).
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "request body must be a JSON object", code="invalid_json")
    if check is not None:
        check(data)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise from_validation(exc, data=data) from None


def json_response(model: pydantic.BaseModel, status: int = 200) -> Response:
    return Response(
        model.__pydantic_serializer__.to_json(model),
        status_code=status,
        media_type="application/json",
    )


@router.get("/v1/models")
async def list_models(request: Request) -> Response:
    st = state_of(request)
    return json_response(ModelListOut(data=[_model_out(st)]))


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> Response:
    st = state_of(request)
    _check_model(st, model_id, param=None)
    return json_response(_model_out(st))


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    st = state_of(request)
    key = api_key_of(request)
    raw = await request.body()
    model, plan = await st.off_loop(functools.partial(_prepare, st, raw, key))
    header = request.headers.get("x-session-id") or None
    plan = await st.codesign.join(st.engine, plan, header)
    chunks = _Chunks(f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()), model)
    if plan.stream:
        return SSEResponse(_stream(st, plan, chunks, request.headers, header))
    try:
        work = _complete(st, plan, chunks, request.headers, header)
        return await unless_disconnected(request.receive, work)
    except ClientGone:
        return Response(status_code=499)  # nobody is listening; the engine request is aborted


def _prepare(st: ServerState, raw: bytes, key: ApiKey | None) -> tuple[str, ChatPlan]:
    """Body -> (model name, engine request): the CPU-heavy part of a request (off the loop)."""
    info = st.engine.info
    body = parse_json(
        raw, ChatCompletionRequest, lambda data: check_counts(data, info.max_model_len)
    )
    _check_model(st, body.model, param="model")
    return body.model, plan_chat(
        body,
        st.engine.tokenizer.with_tool_format(st.config.tool_format),
        info,
        cache_salt=key.cache_salt if key else None,
        default_temperature=st.config.default_temperature,
        budget=SchemaBudget(st.config.max_schema_depth, st.config.max_schema_nodes),
        memory=st.codesign.turns,
        scope=scope_of(key),
        parallel_unset=st.config.parallel_unset,
    )


def _model_out(st: ServerState) -> ModelOut:
    return ModelOut(id=st.model_name, created=_STARTED, max_model_len=st.engine.info.max_model_len)


def _check_model(st: ServerState, name: str, param: str | None) -> None:
    if name not in st.model_names():
        raise APIError(
            404,
            f"model {name!r} does not exist; this server serves {st.model_name!r}",
            param=param,
            code="model_not_found",
        )


async def _complete(
    st: ServerState,
    plan: ChatPlan,
    chunks: _Chunks,
    headers: Mapping[str, str],
    header: str | None,
) -> Response:
    asm = ChoiceAssembler(plan.calls_format, cut_repeats=st.config.cut_repeated_calls)
    stats: RequestStats | None = None
    ids: list[int] = []
    lps: list[TokenLogprob] = []
    async with aclosing(_generate(st, plan, headers)) as deltas:
        async for d in deltas:
            ids.extend(d.token_ids)
            lps.extend(d.logprobs or ())
            asm.feed(d)
            if d.stats is not None:
                stats = d.stats
            if asm.stopped:
                break  # a repeated call: closing the stream aborts the engine request
    asm.finish()
    stats = _observe(st, asm, stats, plan)
    finish = asm.finish_reason(stats.finish_reason)
    content = "".join(asm.content)
    calls = [
        ToolCallOut(id=c.id, function=FunctionCallOut(name=c.name, arguments=c.arguments))
        for c in asm.calls
    ]
    message = AssistantMessageOut(
        content=content if content or not calls else None, tool_calls=calls or None
    )
    out = ChatCompletionOut(
        id=chunks.id,
        created=chunks.created,
        model=chunks.model,
        choices=[
            ChoiceOut(
                message=message,
                finish_reason=finish,
                logprobs=_logprobs_out(st, plan, lps),
            )
        ],
        usage=usage(stats.prompt_tokens, stats.output_tokens, stats.cached_tokens),
    )
    await _finished(st, plan, chunks.id, ids, asm, finish, header, stats)
    return json_response(out)


async def _stream(
    st: ServerState,
    plan: ChatPlan,
    chunks: _Chunks,
    headers: Mapping[str, str],
    header: str | None,
) -> AsyncIterator[bytes]:
    asm = ChoiceAssembler(plan.calls_format, cut_repeats=st.config.cut_repeated_calls)
    stats: RequestStats | None = None
    started = False
    ids: list[int] = []
    decode = st.engine.tokenizer.decode
    async with aclosing(_generate(st, plan, headers)) as deltas:
        async for d in deltas:
            ids.extend(d.token_ids)
            if not started:
                # Only now: an engine error before the first token is still an HTTP error.
                started = True
                yield chunks.delta({"role": "assistant", "content": ""})
            pieces = asm.feed(d)
            lp = chunk_logprobs(d.logprobs, decode) if d.logprobs else None
            if lp is not None and not pieces:
                yield chunks.delta({}, logprobs=lp)  # the tokens held back: listed now
            for i, piece in enumerate(pieces):
                yield chunks.piece(piece, lp if i == 0 else None)
            if d.stats is not None:
                stats = d.stats
            if asm.stopped:
                break  # a repeated call: closing the stream aborts the engine request
    for piece in asm.finish():
        yield chunks.piece(piece)
    stats = _observe(st, asm, stats, plan)
    finish = asm.finish_reason(stats.finish_reason)
    await _finished(st, plan, chunks.id, ids, asm, finish, header, stats)
    yield chunks.delta({}, finish)
    if plan.include_usage:
        yield chunks.usage(stats)
    yield DONE


async def _finished(
    st: ServerState,
    plan: ChatPlan,
    completion_id: str,
    ids: list[int],
    asm: ChoiceAssembler,
    finish: str,
    header: str | None,
    stats: RequestStats,
) -> None:
    """Hand the completion to the co-design (remember its tokens, release or prefill).

    A response cut at a repeated call is not remembered: its tokens hold the repeat the
    client never saw, so an echo of it is rendered instead."""
    out = Outcome(
        completion_id,
        () if asm.stopped else tuple(ids),
        "".join(asm.content),
        [(c.id, c.name, c.arguments) for c in asm.calls],
        finish,
        stats,
    )
    tok = st.engine.tokenizer.with_tool_format(st.config.tool_format)
    await st.codesign.finished(st.engine, tok, plan, out, header)


def _logprobs_out(
    st: ServerState, plan: ChatPlan, lps: list[TokenLogprob]
) -> ChoiceLogprobsOut | None:
    """The choice's ``logprobs`` when the request asked for them, else None."""
    if plan.request.sampling.logprobs is None:
        return None
    return ChoiceLogprobsOut.model_validate(choice_logprobs(lps, st.engine.tokenizer.decode))


def _observe(
    st: ServerState, asm: ChoiceAssembler, stats: RequestStats | None, plan: ChatPlan
) -> RequestStats:
    """The response's statistics, counted in the metrics."""
    stats = asm.final_stats(stats, plan.request)
    st.metrics.observe_chat(stats)
    if asm.stopped:
        st.metrics.repeats_cut.inc()
    return stats


async def _generate(
    st: ServerState, plan: ChatPlan, headers: Mapping[str, str]
) -> AsyncGenerator[TokenDelta, None]:
    """The engine's deltas (in a ``chat`` span continuing the request's ``traceparent``
    when tracing). An engine refusing the request raises ``ValueError`` (vLLM's input
    validation, a remote engine's 400): the request was at fault, so a 400."""
    try:
        async with aclosing(traced_generate(st.engine, plan.request, headers)) as deltas:
            async for d in deltas:
                yield d
    except PromptTooLongError:
        raise
    except ValueError as exc:
        raise APIError(
            400, f"the engine rejected the request: {exc}", code="invalid_request"
        ) from exc


class _Chunks:
    """Encodes ``chat.completion.chunk`` events of one response."""

    __slots__ = ("_head", "created", "id", "model")

    _NO_LOGPROBS = b"null"

    def __init__(self, completion_id: str, created: int, model: str) -> None:
        self.id, self.created, self.model = completion_id, created, model
        meta = orjson.dumps(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
            }
        )
        self._head = b"data: " + meta[:-1] + b',"choices":[{"index":0,"delta":'

    def delta(
        self, delta: dict[str, Any], finish: str | None = None, logprobs: bytes | None = None
    ) -> bytes:
        """One chunk; ``logprobs``: its JSON-encoded ``logprobs`` object (None: null)."""
        reason = b"null" if finish is None else orjson.dumps(finish)
        return b"".join(
            (
                self._head,
                orjson.dumps(delta),
                b',"logprobs":',
                logprobs or self._NO_LOGPROBS,
                b',"finish_reason":',
                reason,
                b"}]}\n\n",
            )
        )

    def piece(self, piece: Piece, logprobs: bytes | None = None) -> bytes:
        if isinstance(piece, str):
            return self.delta({"content": piece}, logprobs=logprobs)
        return self._call(piece, logprobs)

    def _call(self, c: CallOut, logprobs: bytes | None) -> bytes:
        # Name first, then the arguments: the order clients accumulate fragments in.
        head = self.delta(
            {
                "tool_calls": [
                    {
                        "index": c.index,
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": ""},
                    }
                ]
            },
            logprobs=logprobs,
        )
        args = self.delta(
            {"tool_calls": [{"index": c.index, "function": {"arguments": c.arguments}}]}
        )
        return head + args

    def usage(self, s: RequestStats) -> bytes:
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [],
            "usage": usage(s.prompt_tokens, s.output_tokens, s.cached_tokens).model_dump(),
        }
        return b"data: " + orjson.dumps(body) + b"\n\n"
