"""``EngineBase``: what every engine does the same way, written once.

The request id, the prompt-length check, the output budget, the finish reason, releases
waiting for the next request, ``prefill`` as a one-token request whose output is dropped,
and the async context manager closed by ``aclose``. ``EngineProxy`` forwards to another
engine.
"""

from __future__ import annotations

import itertools
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Self, get_args

from ._clock import now
from ._protocol import Engine, EngineError, PromptTooLongError
from ._tier_wire import PendingReleases
from ._tokenizer import ChatTokenizer
from ._types import (
    BACKGROUND_PRIORITY,
    EngineInfo,
    EngineLoad,
    EngineStats,
    FinishReason,
    GenerateRequest,
    PrefillRequest,
    PrefillStats,
    RequestId,
    RequestStats,
    SamplingOptions,
    SessionId,
    TokenDelta,
)

_BACKEND_REASONS: dict[str, FinishReason] = {r: r for r in get_args(FinishReason)}


class EngineBase(ABC):
    """The Engine protocol's shared half; subclasses provide the backend.

    Subclasses pass their tokenizer and facts to ``super().__init__``, implement
    ``generate``, ``stats`` and ``aclose``, and start each ``generate`` with
    :meth:`_accept`.

    Invariants: request ids an engine makes are unique for its lifetime; a session given
    to ``release`` reaches the backend exactly once, with the next request
    (:meth:`_take_releases`), and only when the engine takes hints.
    """

    #: Token a prefill is forced to emit (None: whatever the model samples).
    prefill_forced_token: int | None = None

    def __init__(
        self, tokenizer: ChatTokenizer, info: EngineInfo, *, id_prefix: str | None = None
    ) -> None:
        self._tokenizer = tokenizer
        self._info = info
        # A random tag by default: ids stay unique across engines sharing one server.
        self._id_prefix = id_prefix or f"agentrt-{uuid.uuid4().hex[:8]}"
        self._ids = itertools.count()
        self._releases = PendingReleases()

    @property
    def tokenizer(self) -> ChatTokenizer:
        return self._tokenizer

    @property
    def info(self) -> EngineInfo:
        return self._info

    @abstractmethod
    def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]: ...

    @abstractmethod
    async def stats(self) -> EngineStats: ...

    @abstractmethod
    async def aclose(self) -> None: ...

    async def load(self) -> EngineLoad:
        """How busy the engine is, from :meth:`stats` (backends override it with something
        cheaper). Queued requests mean saturated; full steps are not known here."""
        s = await self.stats()
        return EngineLoad(waiting=s.num_waiting, running=s.num_running)

    # -- what every request goes through ---------------------------------------------------

    def _accept(self, request: GenerateRequest) -> RequestId:
        """Check that the prompt leaves room for output and name the request.

        Raises:
            PromptTooLongError: the prompt fills the context length.
        """
        max_len = self.info.max_model_len
        if len(request.prompt) >= max_len:
            raise PromptTooLongError(len(request.prompt), max_len)
        return request.request_id or RequestId(f"{self._id_prefix}-{next(self._ids)}")

    def _max_output_tokens(self, request: GenerateRequest) -> int:
        """Output tokens the request may produce: its forced output's length, else
        ``max_tokens``, cut to the context left after the prompt (``_accept`` leaves >= 1)."""
        wanted = (
            request.sampling.max_tokens
            if request.forced_output is None
            else len(request.forced_output)
        )
        return max(1, min(wanted, self.info.max_model_len - len(request.prompt)))

    def _finish_reason(
        self, request: GenerateRequest, raw: str | None, output_tokens: int
    ) -> tuple[FinishReason, str | None]:
        """The request's finish reason from the backend's, and an error text if it failed.

        A forced output runs with EOS ignored and exactly its length as the budget, so
        the backend always says "length"; the replayed call ended its answer when the
        whole forced output came out and its last token is the end-of-turn token.
        """
        known = _BACKEND_REASONS.get(raw or "")
        if known in ("abort", "error"):
            return known, None
        forced = request.forced_output
        if forced is not None:
            done = output_tokens >= len(forced) and forced[-1] == self.tokenizer.im_end_id
            return ("stop" if done else "length"), None
        if known is not None:
            return known, None
        # Any other reason means the output ended neither because the model closed its
        # turn ("stop") nor because the budget ran out ("length"). vLLM 0.32 has one
        # more, "repetition" (only with SamplingParams.repetition_detection, which agentrt
        # never sets); OpenAI-style servers add e.g. "content_filter". Calling that "stop"
        # would pass a cut-off text off as a final answer, so it is an error naming the
        # reason, which the agent loop raises.
        return "error", f"the engine ended the request for an unknown reason: {raw!r}"

    # -- releases --------------------------------------------------------------------------

    async def release(self, session: SessionId) -> None:
        """Queue the run's release for the next request (eviction only happens when a
        request allocates, so the release is in place exactly when it matters)."""
        if self.info.supports_hints:
            self._releases.add(session)

    def _take_releases(self) -> tuple[SessionId, ...]:
        """The releases to send with the request being made now (each is sent once)."""
        return self._releases.take()

    # -- prefill and lifetime --------------------------------------------------------------

    async def prefill(self, request: PrefillRequest) -> PrefillStats:
        """Compute and cache KV for the prompt: a one-token request whose output is dropped.

        Raises:
            PromptTooLongError: the prompt fills the context length.
            EngineError: the stream ended without its statistics.
        """
        t0 = now()
        forced = self.prefill_forced_token
        as_generate = GenerateRequest(
            request.prompt,
            SamplingOptions(max_tokens=1),
            hints=request.hints,
            session=request.session,
            priority=BACKGROUND_PRIORITY if request.background else request.priority,
            cache_salt=request.cache_salt,
            forced_output=None if forced is None else (forced,),
            request_id=request.request_id,
        )
        stats: RequestStats | None = None
        async for delta in self.generate(as_generate):
            stats = delta.stats or stats
        if stats is None:
            raise EngineError("prefill ended without statistics")
        return PrefillStats(stats.prompt_tokens, stats.cached_tokens, now() - t0)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class EngineProxy(EngineBase):
    """An engine that passes everything to ``inner``: subclass it and override what changes.

    The seam for engines that observe or rewrite requests (trace replay records every call;
    tests force outputs). Closing a proxy leaves ``inner`` running unless ``owns_inner``.
    """

    def __init__(self, inner: Engine, *, owns_inner: bool = False) -> None:
        super().__init__(inner.tokenizer, inner.info)
        self.inner = inner
        self.owns_inner = owns_inner

    def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]:
        return self.inner.generate(request)

    async def prefill(self, request: PrefillRequest) -> PrefillStats:
        return await self.inner.prefill(request)

    async def release(self, session: SessionId) -> None:
        await self.inner.release(session)

    async def stats(self) -> EngineStats:
        return await self.inner.stats()

    async def load(self) -> EngineLoad:
        return await self.inner.load()

    async def aclose(self) -> None:
        if self.owns_inner:
            await self.inner.aclose()
