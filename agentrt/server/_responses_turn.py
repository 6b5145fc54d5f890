"""One ``/v1/responses`` request as one turn of the agent loop, and the stored conversations.

The conversation is the loop's own ``Conversation`` (append-only token log, tiered hints):
a request continuing ``previous_response_id`` forks the stored one, so its prompt is the
previous prompt plus the new items, token for token, and the engine's prefix cache holds
all of it. The turn is a ``TurnRunner`` — server-side tools start while the model still
decodes, split A is prefilled while they run, results go back in call order — that
pauses at the first response calling a client function tool. The calls it paused at
(``WaitingCall``) are stored with the conversation; the next request brings the client's
outputs, and all results are appended in call order before the loop goes on.

Stored responses belong to the API key that made them: another key gets a 404.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentrt._conversation import Conversation
from agentrt._executor import ToolExecutor, shared_latency_tracker
from agentrt._records import RunResult
from agentrt._switches import Switches
from agentrt._tool_choice import ToolChoice
from agentrt._turn import WaitingCall
from agentrt.engine import ChatMessage, ChatTokenizer, SamplingOptions, SessionId

from ._errors import APIError
from ._lru import IdleLRU
from ._responses_input import InputMessage
from ._responses_items import Json, usage_of
from ._responses_plan import ResponsesPlan

MAX_ITERATIONS = 8
TOOL_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Stored:
    """A finished response kept for ``GET`` and ``previous_response_id``.

    ``conversation`` is never appended to again (a continuation works on a fork).
    ``finished_t``: when it ended (server clock); ``tool_latency_s``: how long this
    conversation's client tools took so far (learned from the gaps between a response
    ending in function calls and its continuation; None: never seen).
    """

    body: Json
    conversation: Conversation
    waiting: tuple[WaitingCall, ...]
    session: SessionId
    finished_t: float = 0.0
    tool_latency_s: float | None = None

    @property
    def awaits_client(self) -> bool:
        """It ended in function calls the client runs (it holds engine state until the
        continuation comes, or the response leaves the store)."""
        return any(w.result is None for w in self.waiting)


class ResponseStore:
    """Stored responses by (tenant, id): bounded, idle ones expire.

    A conversation's engine session is shared by all its stored responses (each
    continuation keeps its previous response's session); when the last of them leaves
    the store (``pop``, LRU or TTL), the session is handed out by ``take_dropped`` for
    the caller to release.
    """

    def __init__(
        self, capacity: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._per_session: collections.Counter[SessionId] = collections.Counter()
        self._dropped: list[SessionId] = []
        self._lru: IdleLRU[tuple[str, str], Stored] = IdleLRU(
            capacity, ttl_s, clock, on_evict=lambda _k, v: self._drop(v.session)
        )

    def get(self, tenant: str, response_id: str) -> Stored | None:
        return self._lru.get((tenant, response_id))

    def put(self, tenant: str, stored: Stored) -> None:
        key = (tenant, str(stored.body["id"]))
        old = self._lru.pop(key)
        if old is not None:
            self._drop(old.session)
        self._per_session[stored.session] += 1
        self._lru.put(key, stored)

    def pop(self, tenant: str, response_id: str) -> Stored | None:
        stored = self._lru.pop((tenant, response_id))
        if stored is not None:
            self._drop(stored.session)
        return stored

    def take_dropped(self) -> list[SessionId]:
        """Sessions none of whose responses is stored any more (expired ones included),
        each handed out once."""
        self._lru.evict()
        out, self._dropped = self._dropped, []
        return out

    def _drop(self, session: SessionId) -> None:
        self._per_session[session] -= 1
        if self._per_session[session] <= 0:
            del self._per_session[session]
            self._dropped.append(session)


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """What the loop reads of a request (a ``TurnConfig``)."""

    tool_choice: ToolChoice
    parallel_tool_calls: bool
    sampling: SamplingOptions
    cache_salt: str | None
    switches: Switches = field(default_factory=Switches)
    name: str = "responses"  # names the turn's trace spans
    constrain_calls: bool = True
    max_iterations: int = MAX_ITERATIONS
    cut_repeated_calls: bool = True


@dataclass(frozen=True, slots=True)
class Turn:
    """A request ready to run: its conversation holds the new input already."""

    plan: ResponsesPlan
    conversation: Conversation
    session: SessionId
    executor: ToolExecutor
    client_tools: frozenset[str]


def prepare_turn(
    plan: ResponsesPlan,
    previous: Stored | None,
    tok: ChatTokenizer,
    session: SessionId,
) -> Turn:
    """The conversation with the request's input appended (CPU-bound: off the loop).

    Raises:
        APIError: an output for no known call, or a missing output of a waiting call (400).
    """
    conv = _base(plan, previous, tok)
    rest = list(plan.input)
    if previous is not None and previous.waiting:
        rest = _answer_waiting(conv, previous.waiting, rest)
    if not rest and (previous is None or not previous.waiting):
        raise APIError(400, "input: no input items", param="input", code="invalid_value")
    known = {c.id for m in conv.messages for c in m.tool_calls}
    for item in rest:
        msg = item.message
        known.update(c.id for c in msg.tool_calls)
        if msg.role == "tool" and msg.tool_call_id not in known:
            where = f"input[{item.index}].call_id"
            raise APIError(
                400,
                f"{where}: no function call with call_id {msg.tool_call_id!r} in this conversation",
                param=where,
                code="invalid_value",
            )
        conv.add_message(msg)
    executor = ToolExecutor(plan.hosted, shared_latency_tracker(), TOOL_TIMEOUT_S)
    return Turn(plan, conv, session, executor, frozenset(f.name for f in plan.functions))


def _base(plan: ResponsesPlan, previous: Stored | None, tok: ChatTokenizer) -> Conversation:
    """A fresh conversation, a fork of the previous one, or (the header changed) the
    previous messages under the new header."""
    if previous is None:
        return Conversation(tok, plan.instructions, plan.schemas, token_log=True, cache_hints=True)
    old = previous.conversation
    instructions = plan.instructions if plan.body.instructions else old.instructions
    if instructions == old.instructions and plan.schemas == old.tools:
        return old.fork()
    conv = Conversation(tok, instructions, plan.schemas, token_log=True, cache_hints=True)
    for msg in old.messages[1:]:  # [0] is the old header's system message
        conv.add_message(msg)
    return conv


def _answer_waiting(
    conv: Conversation, waiting: tuple[WaitingCall, ...], items: list[InputMessage]
) -> list[InputMessage]:
    """Append every waiting call's result in call order: the server's own, or the
    client's output from ``items``. Returns the items not used."""
    wanted = {w.call.call_id for w in waiting if w.result is None}
    given: dict[str, str] = {}
    rest = []
    for item in items:
        msg = item.message
        if msg.role == "tool" and msg.tool_call_id in wanted:
            given[str(msg.tool_call_id)] = msg.content
        else:
            rest.append(item)
    missing = sorted(wanted - given.keys())
    if missing:
        raise APIError(
            400,
            f"input: the previous response is waiting for function_call_output items with "
            f"call_id {missing}",
            param="input",
            code="missing_required_parameter",
        )
    for w in waiting:
        text = w.result.content if w.result is not None else given[w.call.call_id]
        conv.add_message(ChatMessage("tool", text, tool_call_id=w.call.call_id))
    return rest


def response_body(
    response_id: str,
    created: int,
    model: str,
    plan: ResponsesPlan,
    items: list[Json],
    result: RunResult | None,
    *,
    cut_call: bool = False,
) -> Json:
    """The ``response`` object (``result`` None: still in progress; ``cut_call``: the
    last response ended inside a function call, cut by ``max_output_tokens``)."""
    body = plan.body
    status, incomplete, error = "in_progress", None, None
    usage = None
    if result is not None:
        status, incomplete, error = _status(result, cut_call)
        its = result.iterations
        usage = usage_of(
            sum(i.prompt_tokens for i in its),
            sum(i.cached_tokens for i in its),
            sum(i.output_tokens for i in its),
        )
    fmt: Any = {"type": "text"}
    if body.text is not None and body.text.format is not None:
        fmt = body.text.format.model_dump(by_alias=True, exclude_none=True)
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "model": model,
        "output": list(items),
        "parallel_tool_calls": plan.parallel,
        "previous_response_id": body.previous_response_id,
        "reasoning": None,
        "store": body.store is not False,
        "temperature": plan.sampling.temperature,
        "text": {"format": fmt},
        "tool_choice": body.tool_choice if body.tool_choice is not None else plan.tool_choice,
        "tools": body.tools or [],
        "top_p": plan.sampling.top_p,
        "top_logprobs": body.top_logprobs,
        "truncation": "disabled",
        "usage": usage,
        "user": body.user,
        "metadata": body.metadata or {},
    }


def _status(result: RunResult, cut_call: bool) -> tuple[str, Json | None, Json | None]:
    last = result.iterations[-1] if result.iterations else None
    if cut_call and last is not None and last.finish_reason == "length":
        # As OpenAI: a call cut by the budget makes the response incomplete, not an error
        # (the loop ends its run with an error so that the cut call never runs).
        return "incomplete", {"reason": "max_output_tokens"}, None
    if result.status == "error":
        return "failed", None, {"code": "context_length_exceeded", "message": result.error or ""}
    if last is not None and last.finish_reason in ("abort", "error"):
        message = f"the engine ended the request early ({last.finish_reason})"
        return "failed", None, {"code": "server_error", "message": message}
    if last is not None and last.finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}, None
    if result.status == "max_iterations":
        return "incomplete", {"reason": "max_tool_calls"}, None
    return "completed", None, None


def now_s() -> int:
    return int(time.time())
