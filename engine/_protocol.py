"""The ``Engine`` protocol: the whole contract between orchestrator and LLM engine."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from ._tokenizer import ChatTokenizer
from ._types import (
    EngineInfo,
    EngineLoad,
    EngineStats,
    GenerateRequest,
    PrefillRequest,
    PrefillStats,
    SessionId,
    TokenDelta,
)


class EngineError(RuntimeError):
    """The engine could not serve a request (dead engine, transport failure, bad reply)."""


class PromptTooLongError(ValueError):
    """The prompt (plus requested output) does not fit the model's context length."""

    def __init__(self, prompt_tokens: int, max_model_len: int) -> None:
        super().__init__(
            f"prompt of {prompt_tokens} tokens does not fit the context length of "
            f"{max_model_len} tokens"
        )
        self.prompt_tokens = prompt_tokens
        self.max_model_len = max_model_len


@runtime_checkable
class Engine(Protocol):
    """An LLM engine driven by token ids.

    Invariants every implementation keeps (``generate`` is an async generator, so
    ``contextlib.aclosing`` closes it deterministically):
      * ``generate`` yields deltas in order, each stamped with a monotonic time, and the
        last one carries ``RequestStats``; closing the iterator early aborts the request.
      * ``prefill`` leaves the prompt's full blocks in the prefix cache and produces no
        visible output.
      * ``release`` takes effect no later than the engine's next request.
      * Hints only order eviction of *free* cached blocks; they never change outputs.
      * ``load`` is cheap (no round trip into the engine core's step loop) and says
        "saturated" whenever it cannot tell.
    """

    @property
    def tokenizer(self) -> ChatTokenizer: ...

    @property
    def info(self) -> EngineInfo: ...

    def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]: ...

    async def prefill(self, request: PrefillRequest) -> PrefillStats: ...

    async def release(self, session: SessionId) -> None: ...

    async def stats(self) -> EngineStats: ...

    async def load(self) -> EngineLoad: ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
