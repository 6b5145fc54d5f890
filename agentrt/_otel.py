"""OpenTelemetry spans of agent runs and REST chat completions (GenAI semantic conventions).

Loaded by ``_tracing`` only when a tracer provider is set. One turn's tree:

    invoke_agent {agent}        INTERNAL  agent, conversation, run id, status, FTR/E2E, usage sums
    ├ chat {model}              CLIENT    tokens (input, cache read, output), TTFT, finish reason
    ├ execute_tool {tool}       INTERNAL  call id, its overlap with the decode and split prefill
    ├ split_prefill {model}     CLIENT    split A's tokens and cached tokens; done/cancelled
    └ chat {model}              ...

Every time comes from the loop's clock (``engine._clock.now``), mapped to wall-clock
nanoseconds from one anchor per turn, so span times match the run's records exactly
(on a virtual-time loop too). Spans are current while they run (``attach``), so spans a
tool's own instrumentation opens nest under its ``execute_tool``.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import AsyncGenerator, Iterator, Mapping
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import anyio
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from agentrt.engine import (
    Engine,
    EngineInfo,
    GenerateRequest,
    PrefillStats,
    RequestStats,
    SessionId,
    TokenDelta,
)
from agentrt.engine._clock import now

from ._executor import ToolError, ToolSpan
from ._records import RunId, RunResult
from ._response import DetectedCall, Response

SCOPE = "agentrt"
_PROVIDERS = {"vllm": "vllm", "http": "vllm", "scripted": "agentrt.scripted"}

# GenAI semantic-convention attribute names (written out: the package that defines them
# marks them incubating, and they are only strings).
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
MODEL = "gen_ai.request.model"
AGENT_NAME = "gen_ai.agent.name"
CONVERSATION = "gen_ai.conversation.id"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
CACHED_TOKENS = "gen_ai.usage.cache_read.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_ID = "gen_ai.response.id"
TTFT = "gen_ai.response.time_to_first_chunk"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
ERROR_TYPE = "error.type"


def model_name(info: EngineInfo) -> str:
    """The model as clients name it: a local folder by its name, as the REST server does."""
    return (PurePath(info.model).name or info.model) if "/" in info.model else info.model


class _Clock:
    """Maps loop-clock seconds to wall-clock nanoseconds, from one anchor."""

    __slots__ = ("_t0", "_wall0")

    def __init__(self) -> None:
        self._t0 = now()
        self._wall0 = time.time_ns()

    def ns(self, t: float) -> int:
        return self._wall0 + round((t - self._t0) * 1e9)


def request_attributes(request: GenerateRequest, info: EngineInfo) -> dict[str, Any]:
    """What a ``chat`` span knows when the call is sent."""
    s = request.sampling
    attrs: dict[str, Any] = {
        OPERATION: "chat",
        PROVIDER: _PROVIDERS.get(info.backend, info.backend),
        MODEL: model_name(info),
        "gen_ai.request.max_tokens": s.max_tokens,
        "gen_ai.request.temperature": s.temperature,
        "gen_ai.request.top_p": s.top_p,
        "agentrt.request.priority": request.priority,
        "agentrt.request.constrained": request.constraint is not None,
    }
    if s.seed is not None:
        attrs["gen_ai.request.seed"] = s.seed
    if s.stop:
        attrs["gen_ai.request.stop_sequences"] = list(s.stop)
    if request.session is not None:
        attrs[CONVERSATION] = request.session
    return attrs


def set_stats(span: Span, stats: RequestStats, clock: _Clock) -> None:
    """What a ``chat`` span learns when the call ends: tokens, TTFT, finish reason."""
    span.set_attributes(
        {
            RESPONSE_ID: stats.request_id,
            INPUT_TOKENS: stats.prompt_tokens,
            CACHED_TOKENS: stats.cached_tokens,
            OUTPUT_TOKENS: stats.output_tokens,
            FINISH_REASONS: [stats.finish_reason],
        }
    )
    if stats.ttft_s is not None:
        span.set_attribute(TTFT, stats.ttft_s)
    if stats.first_token_t is not None:
        span.add_event("first_token", timestamp=clock.ns(stats.first_token_t))
    if stats.queue_s is not None:
        span.set_attribute("agentrt.request.queue_s", stats.queue_s)
    if stats.finish_reason == "error":
        span.set_status(Status(StatusCode.ERROR, stats.error))
        span.set_attribute(ERROR_TYPE, "engine_error")


def fail(span: Span, exc: BaseException) -> None:
    """Mark ``span`` as ended by ``exc`` (a cancellation is ``error.type=cancelled``)."""
    cancelled = isinstance(exc, anyio.get_cancelled_exc_class() | GeneratorExit)
    kind = "cancelled" if cancelled else type(exc).__qualname__
    span.set_attribute(ERROR_TYPE, kind)
    span.set_status(Status(StatusCode.ERROR, kind if cancelled else f"{kind}: {exc}"))


@contextmanager
def _current(span: Span) -> Iterator[None]:
    """``span`` is the current span inside the block (in this task)."""
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        otel_context.detach(token)


@dataclass(slots=True)
class _Windows:
    """When one iteration's LLM call and split prefill ran (None: still running)."""

    decode: tuple[float, float | None]
    prefill: tuple[float, float | None] | None = None


def _overlap(lo: float, hi: float, window: tuple[float, float | None] | None) -> float:
    if window is None:
        return 0.0
    w_lo, w_hi = window
    return max(0.0, min(hi, hi if w_hi is None else w_hi) - max(lo, w_lo))


class _CallTrace:
    __slots__ = ("clock", "span", "windows")

    def __init__(self, span: Span, clock: _Clock, windows: _Windows) -> None:
        self.span, self.clock, self.windows = span, clock, windows

    def done(self, response: Response, /) -> None:
        stats = response.stats
        self.span.set_attribute("agentrt.tool_calls", len(response.calls))
        if stats is not None:
            set_stats(self.span, stats, self.clock)
            self.windows.decode = (self.windows.decode[0], stats.finish_t)


class _ToolTrace:
    __slots__ = ("end_t", "span", "windows")

    def __init__(self, span: Span, windows: _Windows | None) -> None:
        self.span, self.windows = span, windows
        self.end_t: float | None = None

    def done(self, span: ToolSpan, /) -> None:
        self.end_t = span.end_t
        w = self.windows
        decode = _overlap(span.start_t, span.end_t, w.decode if w else None)
        prefill = _overlap(span.start_t, span.end_t, w.prefill if w else None)
        self.span.set_attributes(
            {
                "agentrt.tool.overlap.decode_s": decode,
                "agentrt.tool.overlap.split_prefill_s": prefill,
                "agentrt.tool.start_delay_s": span.start_t - span.detected_t,
            }
        )
        if isinstance(span.result, ToolError):
            self.span.set_attribute(ERROR_TYPE, span.result.reason)
            self.span.set_status(Status(StatusCode.ERROR, span.result.message))


class _PrefillTrace:
    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    def done(self, stats: PrefillStats, /) -> None:
        self.span.set_attributes(
            {
                INPUT_TOKENS: stats.prompt_tokens,
                CACHED_TOKENS: stats.cached_tokens,
                "agentrt.split_prefill.outcome": "done",
            }
        )


class OtelRunTrace:
    """The spans of one turn (see the module docstring). Not shared between turns."""

    def __init__(
        self, provider: Any, agent: str, info: EngineInfo, run_id: RunId, session: SessionId
    ) -> None:
        self._tracer: trace.Tracer = provider.get_tracer(SCOPE)
        self._clock = _Clock()
        self._info = info
        self._model = model_name(info)
        self._agent = agent
        self._run_id = run_id
        self._session = session
        self._span: Span | None = None
        self._parent: otel_context.Context | None = None
        self._windows: dict[int, _Windows] = {}
        self._iteration = 0

    @property
    def trace_id(self) -> str | None:
        if self._span is None:
            return None
        return trace.format_trace_id(self._span.get_span_context().trace_id)

    def _start(self, name: str, kind: SpanKind, attrs: dict[str, Any]) -> Span:
        return self._tracer.start_span(
            name,
            context=self._parent,
            kind=kind,
            attributes=attrs,
            start_time=self._clock.ns(now()),
        )

    def _end(self, span: Span, t: float | None = None) -> None:
        span.end(end_time=self._clock.ns(now() if t is None else t))

    @contextmanager
    def run(self) -> Iterator[object]:
        """``invoke_agent``: a child of the current span (an incoming request's, say)."""
        span = self._tracer.start_span(
            f"invoke_agent {self._agent}",
            kind=SpanKind.INTERNAL,
            attributes={
                OPERATION: "invoke_agent",
                PROVIDER: _PROVIDERS.get(self._info.backend, self._info.backend),
                AGENT_NAME: self._agent,
                MODEL: self._model,
                CONVERSATION: self._session,
                "agentrt.run.id": self._run_id,
            },
            start_time=self._clock.ns(now()),
        )
        self._span = span
        self._parent = trace.set_span_in_context(span)
        try:
            with _current(span):
                yield span
        except BaseException as exc:
            fail(span, exc)
            raise
        finally:
            self._end(span)

    def finish(self, result: RunResult, /) -> None:
        span = self._span
        assert span is not None, "RunTrace.finish outside run()"
        its = result.iterations
        span.set_attributes(
            {
                "agentrt.run.status": result.status,
                "agentrt.run.iterations": len(its),
                "agentrt.run.e2e_s": result.e2e_s,
                "agentrt.run.tool_time_s": result.tool_time_s,
                "agentrt.run.tool_overlap_s": result.tool_overlap_s,
                INPUT_TOKENS: sum(it.prompt_tokens for it in its),
                CACHED_TOKENS: sum(it.cached_tokens for it in its),
                OUTPUT_TOKENS: sum(it.output_tokens for it in its),
            }
        )
        if result.ftr_s is not None:
            span.set_attribute("agentrt.run.ftr_s", result.ftr_s)
            t = result.arrival_t + result.ftr_s
            span.add_event("final_answer_first_token", timestamp=self._clock.ns(t))
        if result.status == "error":
            span.set_attribute(ERROR_TYPE, "prompt_too_long")
            span.set_status(Status(StatusCode.ERROR, result.error))

    @contextmanager
    def llm_call(self, iteration: int, request: GenerateRequest, /) -> Iterator[_CallTrace]:
        self._iteration = iteration
        attrs = request_attributes(request, self._info)
        attrs["agentrt.iteration"] = iteration
        attrs["agentrt.prompt.cache_hints"] = len(request.hints)
        windows = self._windows[iteration] = _Windows((now(), None))
        span = self._start(f"chat {self._model}", SpanKind.CLIENT, attrs)
        call = _CallTrace(span, self._clock, windows)
        try:
            with _current(span):
                yield call
        except BaseException as exc:
            fail(span, exc)
            raise
        finally:
            self._end(span, windows.decode[1])

    @contextmanager
    def tool(self, call: DetectedCall, /) -> Iterator[_ToolTrace]:
        # A tool belongs to the latest LLM call: it starts while that call decodes (or
        # right after), and before the next one is sent.
        windows = self._windows.get(self._iteration)
        attrs = {
            OPERATION: "execute_tool",
            TOOL_NAME: call.name,
            TOOL_CALL_ID: call.call_id,
            TOOL_TYPE: "function",
            "agentrt.iteration": self._iteration,
        }
        span = self._start(f"execute_tool {call.name}", SpanKind.INTERNAL, attrs)
        tool = _ToolTrace(span, windows)
        try:
            with _current(span):
                yield tool
        except BaseException as exc:
            fail(span, exc)
            raise
        finally:
            self._end(span, tool.end_t)

    @contextmanager
    def split_prefill(self, iteration: int, /) -> Iterator[_PrefillTrace]:
        attrs = {
            OPERATION: "split_prefill",
            PROVIDER: _PROVIDERS.get(self._info.backend, self._info.backend),
            MODEL: self._model,
            CONVERSATION: self._session,
            "agentrt.iteration": iteration,
        }
        t0 = now()
        windows = self._windows.get(iteration)
        if windows is not None:
            windows.prefill = (t0, None)
        span = self._start(f"split_prefill {self._model}", SpanKind.CLIENT, attrs)
        try:
            with _current(span):
                yield _PrefillTrace(span)
        except anyio.get_cancelled_exc_class():
            # By design: the tools finished first, so the rest had nowhere to hide.
            span.set_attribute("agentrt.split_prefill.outcome", "cancelled")
            raise
        except BaseException as exc:
            fail(span, exc)
            raise
        finally:
            t1 = now()
            if windows is not None:
                windows.prefill = (t0, t1)
            self._end(span, t1)


def continued_context(headers: Mapping[str, str]) -> contextvars.Context:
    """A copy of the current context in which ``headers``' trace is the current one."""
    ctx = contextvars.copy_context()
    ctx.run(otel_context.attach, propagate.extract(headers))
    return ctx


async def traced_generate(
    provider: Any, engine: Engine, request: GenerateRequest, headers: Mapping[str, str]
) -> AsyncGenerator[TokenDelta, None]:
    """``engine.generate(request)`` inside a ``chat`` SERVER span continuing ``headers``'
    trace. Not current while it runs: nothing under it opens spans."""
    clock = _Clock()
    span = provider.get_tracer(SCOPE).start_span(
        f"chat {model_name(engine.info)}",
        context=propagate.extract(headers),
        kind=SpanKind.SERVER,
        attributes=request_attributes(request, engine.info),
        start_time=clock.ns(now()),
    )
    stats: RequestStats | None = None
    try:
        async with aclosing(engine.generate(request)) as deltas:
            async for delta in deltas:
                if delta.stats is not None:
                    stats = delta.stats
                yield delta
    except BaseException as exc:
        fail(span, exc)
        raise
    finally:
        if stats is not None:
            set_stats(span, stats, clock)
        span.end(end_time=clock.ns(now() if stats is None else stats.finish_t))
