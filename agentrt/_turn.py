"""One turn of an agent run: LLM calls and tool calls until a final answer.

Per iteration (all switches on):

    conversation.open_response ──prompt──► stream_response ──call closes──► tool starts NOW
    decode ends ──► close_response: generated tokens verbatim + turn close   (= split A)
    prefill(split A, SPLIT_PENDING, ttl ≈ tool time)   ║  tools running
    results (in call order) ──► add_tool_result (TOOL_OUTPUT) ──► next iteration

With a switch off, the matching step falls back to what a plain loop does. The loop is
given everything it uses (the conversation, the engine, the tool executor, the agent's
configuration, the ids, where events go) and reaches into nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import anyio
import anyio.abc

from agentrt.engine import (
    Constraint,
    Engine,
    GenerateRequest,
    PrefillRequest,
    PrefillStats,
    PromptTooLongError,
    SamplingOptions,
    SessionId,
)
from agentrt.engine._clock import now

from ._conversation import Conversation, Prompt
from ._events import (
    Emit,
    FinalAnswerStarted,
    IterationFinished,
    RunDone,
    RunStarted,
    ToolFinished,
    ToolStarted,
)
from ._executor import ToolCallId, ToolExecutor, ToolResult, ToolSpan
from ._hints import call_hints
from ._parsers import ParsedCall
from ._records import IterationRecord, RunId, RunResult, RunStatus, SplitOutcome
from ._response import DetectedCall, Response, call_parts, stream_response
from ._run_priority import RUN_PRIORITIES
from ._split_policy import SkipSplit, decide_split, prefill_rate, uncached_full_blocks
from ._switches import Switches
from ._tool_choice import ToolChoice, choice_for_response, parse_choice, tool_constraint
from ._tracing import run_trace

_SPLIT_TTL_FLOOR_S = 0.5

Outcome = Literal["final", "tools", "gave_up", "client"]
"""How an iteration ended. "gave_up": the response asked for tools where none may run
(the last iteration), so the run ends at its iteration limit. "client": it called a tool
the caller runs (``client_tools``), so the turn pauses there."""


class TurnConfig(Protocol):
    """What the loop reads of an agent's configuration (``Agent`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def switches(self) -> Switches: ...

    @property
    def tool_choice(self) -> ToolChoice: ...

    @property
    def constrain_calls(self) -> bool: ...

    @property
    def parallel_tool_calls(self) -> bool: ...

    @property
    def cut_repeated_calls(self) -> bool: ...

    @property
    def max_iterations(self) -> int: ...

    @property
    def sampling(self) -> SamplingOptions: ...

    @property
    def cache_salt(self) -> str | None: ...


class _TruncatedCall(Exception):
    """The response ended inside a call: the run ends with this error."""


@dataclass(frozen=True, slots=True)
class WaitingCall:
    """A call of the response a turn paused at, in call order: ``result`` is the server's
    (a tool run here) or None (a client tool: the caller brings its output)."""

    call: DetectedCall
    result: ToolResult | None


@dataclass(frozen=True, slots=True)
class _SplitDone:
    """What became of an iteration's split prefill, and when it ran (stats when "done")."""

    stats: PrefillStats | None
    outcome: SplitOutcome
    start_t: float
    end_t: float


class TurnRunner:
    """Runs one user message through the agent loop, on a conversation.

    Args:
        conversation: the session's conversation (this turn appends to it).
        engine: where LLM calls and split prefills go.
        executor: runs the tools.
        config: the agent's configuration.
        run_id: names the run in events, results and tool-call ids.
        session: the engine session (hints, release).
        emit: receives every event, in order.
        client_tools: names of tools the caller runs: a response calling one ends the
            turn (status "tool_calls") with its calls in ``waiting``; the tools it called
            that run here still run. The caller appends the results and runs a new turn
            with no message.
        answer_constraint: the constraint of responses that may not call tools (e.g. a
            JSON schema the answer must follow).
    """

    def __init__(
        self,
        conversation: Conversation,
        engine: Engine,
        executor: ToolExecutor,
        config: TurnConfig,
        *,
        run_id: RunId,
        session: SessionId,
        emit: Emit,
        client_tools: frozenset[str] = frozenset(),
        answer_constraint: Constraint | None = None,
    ) -> None:
        self.conv = conversation
        self.engine = engine
        self.executor = executor
        self.config = config
        self.sw = config.switches
        self.choice = parse_choice(config.tool_choice)
        self.run_id = run_id
        self.session = session
        self.emit = emit
        # Run priority: a lower number is served first, so earlier turns go first, within
        # a bounded gap (RunPriorities). None: run priority is off, every request ties at 0.
        self.rank: int | None = None
        self.records: list[IterationRecord] = []
        self.client_tools = client_tools
        self.answer_constraint = answer_constraint
        self.waiting: tuple[WaitingCall, ...] = ()
        self.trace = run_trace(config.name, engine.info, run_id, session)

    async def run(self, message: str | None) -> RunResult:
        """Answer ``message`` (None: the conversation already ends with the new input,
        e.g. tool results or messages the caller appended)."""
        with self.trace.run():
            result = await self._run(message)
            self.trace.finish(result)
        return result

    async def _run(self, message: str | None) -> RunResult:
        arrival = now()
        self.emit(RunStarted(self.run_id, arrival))
        if message is not None:
            self.conv.open_turn(message)
        status: RunStatus = "max_iterations"
        final, error = "", None
        if self.sw.run_priority:
            self.rank = RUN_PRIORITIES.open()
        try:
            for i in range(self.config.max_iterations):
                try:
                    outcome, final = await self._iteration(i)
                except BaseExceptionGroup as group:
                    # The iteration's task groups wrap what failed in it; a caller's
                    # ``except EngineError`` must see the engine's error itself.
                    raise sole_cause(group) from None
                if outcome == "gave_up":
                    break
                if outcome == "final":
                    status = "completed"
                    break
                if outcome == "client":
                    status = "tool_calls"
                    break
        except (PromptTooLongError, _TruncatedCall) as exc:
            status, error = "error", str(exc)
        finally:
            if self.rank is not None:
                RUN_PRIORITIES.close(self.rank)
            # A turn paused for client tools is not the end of the run: keep its blocks.
            if self.sw.cache_hints and status != "tool_calls":
                with anyio.CancelScope(shield=True):
                    await self.engine.release(self.session)
        last = self.records[-1] if self.records else None
        first_t = last.first_token_t if last is not None and status == "completed" else None
        result = RunResult(
            run_id=self.run_id,
            status=status,
            final_text=final,
            messages=self.conv.messages,
            iterations=tuple(self.records),
            arrival_t=arrival,
            ftr_s=None if first_t is None else first_t - arrival,
            e2e_s=(last.end_t if last else now()) - arrival,
            error=error,
            trace_id=self.trace.trace_id,
        )
        self.emit(RunDone(result))
        return result

    async def _iteration(self, i: int) -> tuple[Outcome, str]:
        """One LLM call and its tools; returns how it ended and the response's text."""
        may_call = self.choice != "none" and i < self.config.max_iterations - 1
        prompt = self.conv.open_response(i)
        request = self._request(i, prompt, may_call)
        spans: dict[ToolCallId, ToolSpan] = {}
        split: list[_SplitDone] = []
        sent = now()
        # The split prefill lives in an outer group: once the tools are done it has no
        # more time to hide in, and waiting for it (it may be queued behind other runs)
        # would only delay the next call, so it is cancelled there.
        async with anyio.create_task_group() as background:
            async with anyio.create_task_group() as tools:
                start_tool = self._tool_starter(tools, spans)
                with self.trace.llm_call(i, request) as call_trace:
                    out = await stream_response(
                        self.engine,
                        request,
                        self.conv.tokenizer.tool_format.parser(),
                        run_id=self.run_id,
                        iteration=i,
                        emit=self.emit,
                        on_call=start_tool if (may_call and self.sw.stream_tools) else None,
                        final_known=not may_call,
                        cut_repeats=self.config.cut_repeated_calls,
                    )
                    call_trace.done(out)
                end = out.stats.finish_t if out.stats else now()
                calls = out.calls if may_call else ()
                self.conv.close_response(
                    self._logged_tokens(out, calls), out.content, call_parts(calls), final=not calls
                )
                if calls and not self.sw.stream_tools:
                    for call in calls:
                        start_tool(call)
                # Calls only the caller runs pause the turn at once: nothing to hide a
                # prefill behind here (the caller prefills split A for its continuation).
                runs_here = any(c.name not in self.client_tools for c in calls)
                if calls and self.sw.split_prefill and runs_here:
                    background.start_soon(self._traced_split_prefill, i, calls, split, out, prompt)
                if not calls and may_call:
                    # Only now is it certain that this response, which could have called
                    # tools, is the final answer; its first token came at first_token_t.
                    first = out.stats.first_token_t if out.stats else None
                    self.emit(FinalAnswerStarted(i, first if first is not None else now()))
            background.cancel_scope.cancel()
        paused = any(c.name in self.client_tools for c in calls)
        if paused:
            self.waiting = tuple(
                WaitingCall(c, spans[c.call_id].result if c.call_id in spans else None)
                for c in calls
            )
        else:
            for call in calls:
                self.conv.add_tool_result(call.call_id, spans[call.call_id].result.content)
        ran = tuple(spans[c.call_id] for c in calls if c.call_id in spans)
        record = _record(i, prompt, out, sent, end, ran, split)
        self.records.append(record)
        self.emit(IterationFinished(record))
        if out.truncated is not None and may_call:
            raise _TruncatedCall(self._truncation_error(out))
        if paused:
            return "client", out.content
        if calls:
            return "tools", out.content
        return ("gave_up" if out.calls and self.choice != "none" else "final"), out.content

    def _logged_tokens(self, out: Response, calls: Sequence[DetectedCall]) -> Sequence[int]:
        """The response's tokens as the log keeps them: verbatim, except for a response
        stopped at a repeated call, whose tokens end inside the repeat; that one is kept
        as the template writes its content and calls, closed by ``<|im_end|>``."""
        if not out.repeat_cut:
            return out.token_ids
        tok = self.conv.tokenizer
        body = tok.tool_format.assistant_body(out.content, call_parts(calls))
        return [*tok.encode_pieces(body), tok.im_end_id]

    def _truncation_error(self, out: Response) -> str:
        cut = out.truncated
        assert cut is not None, "only a truncated response has a truncation error"
        name = repr(cut.name) if cut.name else "a tool"
        return (
            f"the response reached max_tokens ({self.config.sampling.max_tokens}) inside "
            f"a call to {name}; the call was not run. Raise max_tokens "
            f"(arguments so far: {cut.arguments_text[:200]!r})"
        )

    def _request(self, i: int, prompt: Prompt, may_call: bool) -> GenerateRequest:
        constraint: Constraint | None = None
        if may_call and self.conv.tools:
            constraint = tool_constraint(
                choice_for_response(self.choice, i),
                self.conv.tools,
                parallel=self.config.parallel_tool_calls,
                constrain_auto=self.config.constrain_calls,
                tool_format=self.conv.tokenizer.tool_format.name,
            )
        else:
            constraint = self.answer_constraint
        return GenerateRequest(
            prompt.tokens,
            self.config.sampling,
            constraint,
            call_hints(
                prompt.hints,
                len(prompt.tokens),
                self.config.sampling.max_tokens,
                final=not may_call,
            ),
            session=self.session,
            priority=(
                0
                if self.rank is None
                else RUN_PRIORITIES.priority(self.rank, self.engine.info.max_num_seqs)
            ),
            cache_salt=self.config.cache_salt,
        )

    def _tool_starter(
        self, tg: anyio.abc.TaskGroup, spans: dict[ToolCallId, ToolSpan]
    ) -> Callable[[DetectedCall], None]:
        def start(call: DetectedCall) -> None:
            if call.name in self.client_tools:
                return  # the caller runs it
            tg.start_soon(self._run_tool, call, spans)

        return start

    async def _run_tool(self, call: DetectedCall, spans: dict[ToolCallId, ToolSpan]) -> None:
        """One tool execution, from start to result (never raises but on cancellation)."""
        self.emit(ToolStarted(call.call_id, call.name, now()))
        with self.trace.tool(call) as tool_trace:
            span = await self.executor.run(call.call, call.call_id, call.detected_t)
            tool_trace.done(span)
        spans[call.call_id] = span
        self.emit(ToolFinished(call.call_id, call.name, span.result, span.end_t))

    async def _traced_split_prefill(
        self,
        i: int,
        calls: Sequence[DetectedCall],
        sink: list[_SplitDone],
        last: Response,
        asked: Prompt,
    ) -> None:
        with self.trace.split_prefill(i) as prefill_trace:
            await self._split_prefill(calls, sink, last, asked)
            # A skipped prefill keeps its span, with nothing cached to report.
            if sink and (stats := sink[-1].stats) is not None:
                prefill_trace.done(stats)

    async def _split_prefill(
        self, calls: Sequence[DetectedCall], sink: list[_SplitDone], last: Response, asked: Prompt
    ) -> None:
        """Prefill split A (everything before the first tool result) while tools run, if
        the engine has spare capacity and the prefill can end before the tools do.

        It is background work (the engine's lowest priority) and is cancelled with the
        background group the moment the tool results are in.
        """
        names = [c.call.name for c in calls if isinstance(c.call, ParsedCall)]
        expected = self.executor.expected_latency(names)
        ttl = max(_SPLIT_TTL_FLOOR_S, 2.0 * expected)
        split_a = self.conv.split_a(pending_ttl_s=ttl)
        # The results are in when the last tool to start is done. Streamed tools started
        # as their calls closed; otherwise they start just now.
        started = max(c.detected_t for c in calls) if self.sw.stream_tools else now()
        decision = decide_split(
            await self.engine.load(),
            new_tokens=uncached_full_blocks(
                # The last sampled token has no KV yet.
                split_a.tokens,
                (*asked.tokens, *last.token_ids[:-1]),
                self.engine.info.block_size,
            ),
            tools_left_s=expected - (now() - started),
            tokens_per_s=prefill_rate(last.stats),
            relabels=bool(split_a.hints),
        )
        if isinstance(decision, SkipSplit):
            sink.append(_SplitDone(None, decision.reason, now(), now()))
            return
        t0 = now()
        done = _SplitDone(None, "cancelled", t0, t0)
        sink.append(done)
        stats = await self.engine.prefill(
            PrefillRequest(
                split_a.tokens,
                split_a.hints,
                self.session,
                cache_salt=self.config.cache_salt,
                background=True,
            )
        )
        sink[sink.index(done)] = _SplitDone(stats, "done", t0, now())


def _record(
    i: int,
    prompt: Prompt,
    out: Response,
    sent: float,
    end: float,
    tools: tuple[ToolSpan, ...],
    split: list[_SplitDone],
) -> IterationRecord:
    stats = out.stats
    done = split[0] if split else None
    ran = done if done is not None and done.stats is not None else None
    return IterationRecord(
        index=i,
        prompt_tokens=len(prompt.tokens),
        cached_tokens=stats.cached_tokens if stats else 0,
        output_tokens=len(out.token_ids),
        sent_t=sent,
        first_token_t=stats.first_token_t if stats else None,
        end_t=end,
        finish_reason=stats.finish_reason if stats else "error",
        tools=tools,
        split_prefill=ran.stats if ran else None,
        split_prefill_span=(ran.start_t, ran.end_t) if ran else None,
        split_outcome=done.outcome if done else None,
        divergence=prompt.divergence,
    )


def sole_cause(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception a (nested) task-group error holds, or the group if it holds more."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            leaves.append(exc)
    return leaves[0] if len(leaves) == 1 else group
