"""``ReplayEngine``: an Engine that forces recorded outputs and records every engine call.

It wraps the real engine. A generate request of a registered session gets the forced
output of that session's next LLM call (``GenerateRequest.forced_output``); everything
else passes through untouched. Every call — generate or prefill — is recorded with its
submission time, first-token and end times, prompt and output ids, cached tokens and
(for generate) the arrival time of each token, which is what the replay's metrics need.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

from agentrt.engine import (
    Engine,
    EngineProxy,
    GenerateRequest,
    PrefillRequest,
    PrefillStats,
    RequestStats,
    SessionId,
    TokenDelta,
)
from agentrt.engine._clock import now

from ..report._records import CallKind, CallRecord


class ReplayMismatchError(RuntimeError):
    """A session asked for more LLM calls than its request recorded (the replayed agent
    made a call the trace did not: a bug in the replay, never in the engine)."""


@dataclass(slots=True)
class EngineCall:
    """One engine request as the proxy saw it (times on the event loop's clock)."""

    kind: CallKind
    start_t: float
    prompt: tuple[int, ...]
    first_token_t: float | None = None
    end_t: float | None = None
    cached_tokens: int = 0
    output: list[int] = field(default_factory=list)
    token_times: list[float] = field(default_factory=list)
    finish_reason: str | None = None

    def record(self, *, keep_ids: bool = True) -> CallRecord:
        """The metrics layer's record (``keep_ids``: keep token ids for the max hit rate)."""
        end = self.end_t if self.end_t is not None else self.start_t
        first = self.first_token_t if self.kind == "generate" else None
        return CallRecord(
            kind=self.kind,
            start_t=self.start_t,
            first_token_t=first,
            end_t=max(end, first or end),
            prompt_tokens=len(self.prompt),
            cached_tokens=min(self.cached_tokens, len(self.prompt)),
            output_tokens=len(self.output),
            prompt_ids=self.prompt if keep_ids else (),
            output_ids=tuple(self.output) if keep_ids else (),
        )


@dataclass(slots=True)
class _Script:
    outputs: tuple[tuple[int, ...], ...]
    next: int = 0
    calls: list[EngineCall] = field(default_factory=list)


class ReplayEngine(EngineProxy):
    """The Engine protocol over ``inner``, forcing the outputs of registered sessions.

    Invariant: a registered session's k-th generate request is sent with its k-th forced
    output, and every engine call of a registered session is in its ``calls``, in
    submission order.

    Args:
        inner: the real engine (not closed by ``aclose`` unless ``owns_inner``).
    """

    def __init__(self, inner: Engine, *, owns_inner: bool = False) -> None:
        super().__init__(inner, owns_inner=owns_inner)
        self._scripts: dict[SessionId, _Script] = {}

    def register(self, session: SessionId, outputs: Sequence[Sequence[int]]) -> None:
        """Force ``outputs`` (in order) on the generate requests of ``session``."""
        if session in self._scripts:
            raise ValueError(f"session {session!r} is already registered")
        self._scripts[session] = _Script(tuple(tuple(o) for o in outputs))

    def take(self, session: SessionId) -> list[EngineCall]:
        """Forget ``session`` and return its engine calls."""
        script = self._scripts.pop(session, None)
        return [] if script is None else script.calls

    def _forced(self, request: GenerateRequest) -> tuple[GenerateRequest, _Script | None]:
        script = self._scripts.get(request.session) if request.session is not None else None
        if script is None:
            return request, None
        if script.next >= len(script.outputs):
            raise ReplayMismatchError(
                f"session {request.session!r} sent LLM call {script.next + 1} but its request "
                f"recorded {len(script.outputs)}"
            )
        forced = script.outputs[script.next]
        script.next += 1
        return dataclasses.replace(request, forced_output=forced), script

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]:
        request, script = self._forced(request)
        call = EngineCall("generate", now(), request.prompt)
        if script is not None:
            script.calls.append(call)
        stats: RequestStats | None = None
        try:
            # aclosing: a consumer that stops early must abort the inner request now.
            async with aclosing(self.inner.generate(request)) as stream:
                async for delta in stream:
                    call.output.extend(delta.token_ids)
                    call.token_times.extend([delta.t] * len(delta.token_ids))
                    if delta.stats is not None:
                        stats = delta.stats
                    yield delta
        finally:
            call.end_t = stats.finish_t if stats is not None else now()
            if stats is not None:
                call.first_token_t = stats.first_token_t
                call.cached_tokens = stats.cached_tokens
                call.finish_reason = stats.finish_reason
            elif call.token_times:
                call.first_token_t = call.token_times[0]

    async def prefill(self, request: PrefillRequest) -> PrefillStats:
        call = EngineCall("prefill", now(), request.prompt)
        session = request.session
        script = self._scripts.get(session) if session is not None else None
        if script is not None:
            script.calls.append(call)
        try:
            stats = await self.inner.prefill(request)
        finally:
            call.end_t = now()
        call.cached_tokens = stats.cached_tokens
        return stats

    async def aclose(self) -> None:
        self._scripts.clear()
        await super().aclose()
