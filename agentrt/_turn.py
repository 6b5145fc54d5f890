"""One turn of an agent run: LLM calls and tool calls until a final answer.

Per iteration (all switches on):

    generate(log) ──tokens──► parser ──call closes──► tool starts NOW (task group)
    decode ends ──► append generated tokens verbatim, turn close  (= split A)
    prefill(split A, SPLIT_PENDING, ttl ≈ tool time)   ║  tools running
    results (in call order) ──► TOOL_OUTPUT segments ──► next iteration

With a switch off, the matching step falls back to what a plain loop does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import anyio

from agentrt.engine import (
    CacheHint,
    ChatMessage,
    Constraint,
    Engine,
    EngineError,
    GenerateRequest,
    PrefillStats,
    PromptTooLongError,
    RequestStats,
    Tier,
    ToolCallConstraint,
    ToolCallPart,
)
from agentrt.engine._clock import now

from ._events import (
    FinalAnswerStarted,
    IterationFinished,
    RunDone,
    RunEvent,
    RunStarted,
    TokenEvent,
    ToolCallDetected,
    ToolFinished,
    ToolStarted,
)
from ._executor import ToolCallId, ToolSpan
from ._parsers import MalformedCall, ParsedCall, TextPiece
from ._records import Divergence, IterationRecord, RunResult, RunStatus
from ._token_log import first_divergence

if TYPE_CHECKING:
    from ._session import Session

Emit = Callable[[RunEvent], None]
_priorities = itertools.count()
_SPLIT_TTL_FLOOR_S = 0.5


@dataclass(slots=True)
class _Decoded:
    """What one LLM call produced."""

    token_ids: list[int] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    calls: list[tuple[ToolCallId, ParsedCall | MalformedCall, float]] = field(default_factory=list)
    stats: RequestStats | None = None

    @property
    def content(self) -> str:
        return "".join(self.text).strip()


class TurnRunner:
    """Runs one user message through the agent loop on a session's token log."""

    def __init__(self, session: Session, engine: Engine, emit: Emit) -> None:
        self.s = session
        self.agent = session.agent
        self.sw = session.agent.switches
        self.engine = engine
        self.tok = engine.tokenizer.with_tool_format(self.agent.tool_format)
        self.emit = emit
        self.priority = next(_priorities) if self.sw.run_priority else 0
        self.tool_schemas = [t.schema for t in self.agent.tools]
        self.records: list[IterationRecord] = []

    async def run(self, message: str) -> RunResult:
        arrival = now()
        self.emit(RunStarted(self.s.run_id, arrival))
        self.s.start_turn(self.tok, self.tool_schemas, message)
        status: RunStatus = "max_iterations"
        final, error = "", None
        try:
            for i in range(self.agent.max_iterations):
                outcome, final = await self._iteration(i)
                if outcome == "gave_up":
                    break  # the last allowed response still asked for tools
                if outcome == "final":
                    status = "completed"
                    break
        except PromptTooLongError as exc:
            status, error = "error", str(exc)
        finally:
            if self.sw.cache_hints:
                with anyio.CancelScope(shield=True):
                    await self.engine.release(self.s.session_id)
        last = self.records[-1] if self.records else None
        answered = status == "completed" and last is not None and last.first_token_t is not None
        result = RunResult(
            run_id=self.s.run_id,
            status=status,
            final_text=final,
            messages=tuple(self.s.messages),
            iterations=tuple(self.records),
            arrival_t=arrival,
            ftr_s=(last.first_token_t - arrival)
            if answered and last and last.first_token_t
            else None,
            e2e_s=(last.end_t if last else now()) - arrival,
            error=error,
        )
        self.emit(RunDone(result))
        return result

    def _constraint(self, i: int, may_call: bool) -> Constraint | None:
        choice = self.agent.tool_choice
        if not may_call or not self.agent.tools:
            return None
        tools = tuple(self.tool_schemas)
        forced = i == 0 and choice != "auto"
        if forced and choice not in ("required", "none"):
            tools = tuple(t for t in self.tool_schemas if t.name == choice)
        fmt = self.tok.tool_format.name
        if forced:
            return ToolCallConstraint(
                tools, required=True, parallel=self.agent.parallel_tool_calls, format=fmt
            )
        if self.agent.constrain_calls:
            return ToolCallConstraint(
                tools, required=False, parallel=self.agent.parallel_tool_calls, format=fmt
            )
        return None

    def _prompt(self, i: int) -> tuple[tuple[int, ...], tuple[CacheHint, ...], Divergence | None]:
        log = self.s.log
        logged = log.tokens
        if self.sw.token_log:
            prompt, divergence = logged, None
        else:
            prompt = tuple(
                self.tok.render(self.s.messages, self.tool_schemas, add_generation_prompt=True)
            )
            at = first_divergence(logged, prompt)
            divergence = None if at is None else Divergence(i, at, len(logged), len(prompt))
        hints: tuple[CacheHint, ...] = ()
        if self.sw.cache_hints:
            n = len(prompt) if divergence is None else divergence.position
            hints = tuple(
                CacheHint(h.start, min(h.end, n), h.tier, h.ttl_s, h.base)
                for h in log.hints()
                if h.start < n
            )
        return prompt, hints, divergence

    async def _iteration(self, i: int) -> tuple[Literal["final", "tools", "gave_up"], str]:
        """One LLM call and its tools; returns how it ended and the response's text.

        "gave_up": the response asked for tools where none may run (the last iteration),
        so the run ends at its iteration limit.
        """
        may_call = self.agent.tool_choice != "none" and i < self.agent.max_iterations - 1
        self.s.log.append(self.tok.generation_prompt, "generation_prompt", Tier.DEFAULT)
        prompt, hints, divergence = self._prompt(i)
        request = GenerateRequest(
            prompt,
            self.agent.sampling,
            self._constraint(i, may_call),
            hints,
            session=self.s.session_id,
            priority=self.priority,
            cache_salt=self.agent.cache_salt,
        )
        spans: dict[ToolCallId, ToolSpan] = {}
        split: list[tuple[PrefillStats, float, float]] = []
        sent = now()
        # The split prefill lives in an outer group: once the tools are done it has no
        # more time to hide in, and waiting for it (it may be queued behind other runs)
        # would only delay the next call, so it is cancelled there.
        async with anyio.create_task_group() as background:
            async with anyio.create_task_group() as tg:
                start_tool = (
                    self._tool_starter(tg, spans) if (may_call and self.sw.stream_tools) else None
                )
                out = await self._decode(i, request, start_tool, final_known=not may_call)
                end = out.stats.finish_t if out.stats else now()
                calls = out.calls if may_call else []
                self._append_response(out, calls)
                if calls:
                    if start_tool is None:
                        starter = self._tool_starter(tg, spans)
                        for cid, call, detected in calls:
                            starter(cid, call, detected)
                    if self.sw.split_prefill:
                        background.start_soon(self._split_prefill, [c for _, c, _ in calls], split)
                elif may_call:
                    # Only now is it certain that this response, which could have called
                    # tools, is the final answer; its first token came at first_token_t.
                    first = out.stats.first_token_t if out.stats else None
                    self.emit(FinalAnswerStarted(i, first if first is not None else now()))
            background.cancel_scope.cancel()
        for cid, _call, _ in calls:
            self.s.add_tool_result(self.tok, cid, spans[cid].result.content)
        stats = out.stats
        record = IterationRecord(
            index=i,
            prompt_tokens=len(prompt),
            cached_tokens=stats.cached_tokens if stats else 0,
            output_tokens=len(out.token_ids),
            sent_t=sent,
            first_token_t=stats.first_token_t if stats else None,
            end_t=end,
            finish_reason=stats.finish_reason if stats else "error",
            tools=tuple(spans[cid] for cid, _, _ in calls),
            split_prefill=split[0][0] if split else None,
            split_prefill_span=(split[0][1], split[0][2]) if split else None,
            divergence=divergence,
        )
        self.records.append(record)
        self.emit(IterationFinished(record))
        if calls:
            return "tools", out.content
        return (
            "gave_up" if out.calls and self.agent.tool_choice != "none" else "final"
        ), out.content

    async def _decode(
        self,
        i: int,
        request: GenerateRequest,
        start_tool: Callable[[ToolCallId, ParsedCall | MalformedCall, float], None] | None,
        *,
        final_known: bool,
    ) -> _Decoded:
        out = _Decoded()
        parser = self.tok.tool_format.parser()

        def take(events: list[TextPiece | ParsedCall | MalformedCall], t: float) -> None:
            for ev in events:
                if isinstance(ev, TextPiece):
                    out.text.append(ev.text)
                    continue
                cid = ToolCallId(f"call_{self.s.run_id[-8:]}_{i}_{ev.index}")
                out.calls.append((cid, ev, t))
                args = ev.arguments if isinstance(ev, ParsedCall) else None
                name = ev.name if isinstance(ev, ParsedCall) else ""
                self.emit(ToolCallDetected(i, cid, name, args, t))
                if start_tool is not None:
                    start_tool(cid, ev, t)

        async with aclosing(self.engine.generate(request)) as stream:
            async for delta in stream:
                if delta.token_ids and not out.token_ids and final_known:
                    self.emit(FinalAnswerStarted(i, delta.t))
                out.token_ids.extend(delta.token_ids)
                self.emit(TokenEvent(i, delta.text, delta.token_ids, delta.t))
                if delta.text:
                    take(parser.feed(delta.text), delta.t)
                if delta.stats is not None:
                    out.stats = delta.stats
        take(parser.finish(), out.stats.finish_t if out.stats else now())
        if out.stats is not None and out.stats.finish_reason == "error":
            raise EngineError(f"engine failed the request: {out.stats.error}")
        return out

    def _tool_starter(
        self, tg: anyio.abc.TaskGroup, spans: dict[ToolCallId, ToolSpan]
    ) -> Callable[[ToolCallId, ParsedCall | MalformedCall, float], None]:
        executor = self.s.executor

        async def run_one(
            cid: ToolCallId, call: ParsedCall | MalformedCall, detected: float
        ) -> None:
            name = call.name if isinstance(call, ParsedCall) else ""
            self.emit(ToolStarted(cid, name, now()))
            span = await executor.run(call, cid, detected)
            spans[cid] = span
            self.emit(ToolFinished(cid, name, span.result, span.end_t))

        def start(cid: ToolCallId, call: ParsedCall | MalformedCall, detected: float) -> None:
            tg.start_soon(run_one, cid, call, detected)

        return start

    def _append_response(
        self, out: _Decoded, calls: list[tuple[ToolCallId, ParsedCall | MalformedCall, float]]
    ) -> None:
        parts = tuple(
            ToolCallPart(cid, c.name, c.arguments_json)
            for cid, c, _ in calls
            if isinstance(c, ParsedCall)
        )
        tier = Tier.DEFAULT if calls else Tier.RESPONSE
        self.s.add_response(
            self.tok, out.token_ids, ChatMessage("assistant", out.content, parts), tier
        )

    async def _split_prefill(
        self, calls: list[ParsedCall | MalformedCall], sink: list[tuple[PrefillStats, float, float]]
    ) -> None:
        """Prefill split A (everything before the first tool result) while tools run."""
        names = [c.name for c in calls if isinstance(c, ParsedCall)]
        ttl = max(_SPLIT_TTL_FLOOR_S, 2.0 * self.s.executor.expected_latency(names))
        if self.sw.token_log:
            split_a = self.s.log.tokens
        else:
            split_a = tuple(self.tok.render(self.s.messages, self.tool_schemas))
        hints = self.s.log.hints(pending_ttl_s=ttl) if self.sw.cache_hints else ()
        hints = tuple(h for h in hints if h.end <= len(split_a))
        t0 = now()
        stats = await self.engine.prefill(
            split_a,
            hints,
            self.s.session_id,
            cache_salt=self.agent.cache_salt,
            priority=self.priority,
        )
        sink.append((stats, t0, now()))
