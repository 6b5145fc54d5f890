"""Tracing hooks of the agent loop: OpenTelemetry spans when a tracer provider is set.

The loop opens one ``RunTrace`` per turn and calls it at four places (names and
attributes follow OpenTelemetry's GenAI semantic conventions; see ``_otel``):

    run()              invoke_agent {agent}      the turn; the current span while it runs
    llm_call()         ├ chat {model}            one per LLM call
    tool()             ├ execute_tool {tool}     one per tool execution
    split_prefill()    └ split_prefill {model}   one per split prefill

Tracing is on when OpenTelemetry's global tracer provider is a real one (set by the
application, by ``opentelemetry-instrument``, or by agentrt's command line from the
``OTEL_*`` variables), or when ``use_tracer_provider`` names one. Otherwise every hook
is ``NO_TRACE``, whose methods do nothing, and OpenTelemetry is never imported: deciding
costs one ``sys.modules`` look-up per turn, and nothing per token.
"""

from __future__ import annotations

import contextvars
import os
import sys
from collections.abc import AsyncGenerator, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from agentrt.engine import Engine, EngineInfo, GenerateRequest, PrefillStats, SessionId, TokenDelta

if TYPE_CHECKING:
    from ._executor import ToolSpan
    from ._records import RunId, RunResult
    from ._response import DetectedCall, Response


class CallTrace(Protocol):
    """The span of one LLM call, told how the call went."""

    def done(self, response: Response, /) -> None: ...


class ToolTrace(Protocol):
    """The span of one tool execution, told how it ended."""

    def done(self, span: ToolSpan, /) -> None: ...


class PrefillTrace(Protocol):
    """The span of one split prefill, told what it cached (not called if cancelled)."""

    def done(self, stats: PrefillStats, /) -> None: ...


class RunTrace(Protocol):
    """The spans of one turn. Each context manager ends its span on exit, marking it
    failed if an exception leaves it (a cancelled split prefill is not a failure)."""

    @property
    def trace_id(self) -> str | None:
        """The turn's trace id (32 hex digits) once ``run()`` is entered; None untraced."""
        ...

    def run(self) -> AbstractContextManager[object]: ...

    def finish(self, result: RunResult, /) -> None: ...

    def llm_call(
        self, iteration: int, request: GenerateRequest, /
    ) -> AbstractContextManager[CallTrace]: ...

    def tool(self, call: DetectedCall, /) -> AbstractContextManager[ToolTrace]: ...

    def split_prefill(self, iteration: int, /) -> AbstractContextManager[PrefillTrace]: ...


class _NoTrace:
    """Every hook at once, doing nothing: what the loop gets when nothing is traced."""

    __slots__ = ()

    @property
    def trace_id(self) -> str | None:
        return None

    def __enter__(self) -> _NoTrace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def run(self) -> _NoTrace:
        return self

    def finish(self, result: object, /) -> None:
        return None

    def llm_call(self, iteration: int, request: GenerateRequest, /) -> _NoTrace:
        return self

    def tool(self, call: object, /) -> _NoTrace:
        return self

    def split_prefill(self, iteration: int, /) -> _NoTrace:
        return self

    def done(self, value: object, /) -> None:
        return None


NO_TRACE = _NoTrace()
"""The hooks of an untraced turn."""

_overrides: list[Any] = []


def tracer_provider() -> Any | None:
    """The provider agentrt traces to, or None when tracing is off.

    Off unless ``use_tracer_provider`` names one or OpenTelemetry's global provider is
    a real one. If no code imported ``opentelemetry.trace``, nobody can have set a
    provider, so the API is not imported to find out.
    """
    if _overrides:
        return _overrides[-1]
    api = sys.modules.get("opentelemetry.trace")
    if api is None:
        return None
    provider = api.get_tracer_provider()
    if isinstance(provider, api.ProxyTracerProvider | api.NoOpTracerProvider):
        return None
    return provider


@contextmanager
def use_tracer_provider(provider: Any) -> Iterator[None]:
    """Trace agent runs to ``provider`` (an OpenTelemetry ``TracerProvider``) inside the
    block, whatever the global provider is (tests, or an application that keeps
    agentrt's spans apart)."""
    _overrides.append(provider)
    try:
        yield
    finally:
        _overrides.remove(provider)


def run_trace(agent: str, engine: EngineInfo, run_id: RunId, session: SessionId) -> RunTrace:
    """The hooks of one turn: spans when tracing is on, ``NO_TRACE`` otherwise."""
    provider = tracer_provider()
    if provider is None:
        return NO_TRACE
    from ._otel import OtelRunTrace

    return OtelRunTrace(provider, agent, engine, run_id, session)


def incoming_context(headers: Mapping[str, str]) -> contextvars.Context | None:
    """A copy of the current context continuing the trace named by ``headers``
    (``traceparent``), for a task that serves the request; None when not tracing."""
    if tracer_provider() is None:
        return None
    from ._otel import continued_context

    return continued_context(headers)


def traced_generate(
    engine: Engine, request: GenerateRequest, headers: Mapping[str, str]
) -> AsyncGenerator[TokenDelta, None]:
    """``engine.generate(request)`` for a REST chat completion: when tracing, inside a
    ``chat`` span that continues the trace of the request's ``traceparent``."""
    provider = tracer_provider()
    if provider is None:
        return engine.generate(request)
    from ._otel import traced_generate as generate

    return generate(provider, engine, request, headers)


def otel_env_requested(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the ``OTEL_*`` variables ask for trace export.

    Yes when ``OTEL_TRACES_EXPORTER`` names an exporter (not "none"), or when it is
    unset and an OTLP endpoint is; never with ``OTEL_SDK_DISABLED=true``. (The SDK's
    own default exporter is "otlp", but a process that set nothing must not start
    exporting to localhost.)
    """
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER")
    if exporters is not None:
        return exporters.strip().lower() not in ("", "none")
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
