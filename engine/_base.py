"""``EngineBase``: what every engine implements the same way.

``prefill`` is a one-token request whose output is dropped (the KV of the prompt stays
in the prefix cache), and an engine is an async context manager closed by ``aclose``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Sequence
from types import TracebackType
from typing import Self

from ._clock import now
from ._protocol import Engine, EngineError
from ._tokenizer import ChatTokenizer
from ._types import (
    CacheHint,
    EngineInfo,
    EngineStats,
    GenerateRequest,
    PrefillStats,
    RequestStats,
    SamplingOptions,
    SessionId,
    TokenDelta,
)


class EngineBase(ABC):
    """Shared ``prefill`` and context management; subclasses provide the rest."""

    #: Token a prefill is forced to emit (None: whatever the model samples).
    prefill_forced_token: int | None = None

    @abstractmethod
    def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]: ...

    @abstractmethod
    async def aclose(self) -> None: ...

    async def prefill(
        self,
        prompt: Sequence[int],
        hints: Sequence[CacheHint] = (),
        session: SessionId | None = None,
        *,
        cache_salt: str | None = None,
        priority: int = 0,
    ) -> PrefillStats:
        """Compute and cache KV for ``prompt``: a one-token request whose output is dropped.

        Raises:
            EngineError: the stream ended without its statistics.
        """
        t0 = now()
        forced = self.prefill_forced_token
        req = GenerateRequest(
            tuple(prompt),
            SamplingOptions(max_tokens=1),
            hints=tuple(hints),
            session=session,
            priority=priority,
            cache_salt=cache_salt,
            forced_output=None if forced is None else (forced,),
        )
        stats: RequestStats | None = None
        async for delta in self.generate(req):
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
        self.inner = inner
        self.owns_inner = owns_inner

    @property
    def tokenizer(self) -> ChatTokenizer:
        return self.inner.tokenizer

    @property
    def info(self) -> EngineInfo:
        return self.inner.info

    def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]:
        return self.inner.generate(request)

    async def prefill(
        self,
        prompt: Sequence[int],
        hints: Sequence[CacheHint] = (),
        session: SessionId | None = None,
        *,
        cache_salt: str | None = None,
        priority: int = 0,
    ) -> PrefillStats:
        return await self.inner.prefill(
            prompt, hints, session, cache_salt=cache_salt, priority=priority
        )

    async def release(self, session: SessionId) -> None:
        await self.inner.release(session)

    async def stats(self) -> EngineStats:
        return await self.inner.stats()

    async def aclose(self) -> None:
        if self.owns_inner:
            await self.inner.aclose()
