"""What a finished agent run reports: per-iteration timings, tool spans, FTR and E2E."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NewType

from agentrt.engine import ChatMessage, PrefillStats

from ._executor import ToolSpan

RunId = NewType("RunId", str)

RunStatus = Literal["completed", "max_iterations", "error", "tool_calls"]
""""tool_calls": the turn paused at calls of tools its caller runs (REST responses)."""

SplitOutcome = Literal["done", "cancelled", "saturated", "tools_faster", "nothing_new"]
"""What became of an iteration's split prefill: it ran to the end ("done"), the tool results
came first ("cancelled"), or it was skipped (the others: see ``agentrt._split_policy``)."""


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where a re-rendered prompt stopped matching the tokens the model generated."""

    iteration: int
    position: int
    log_tokens: int
    rendered_tokens: int


@dataclass(frozen=True, slots=True)
class IterationRecord:
    """One LLM call of a run and the tools it started. Times are monotonic seconds.

    ``split_outcome`` is None when no split prefill was considered (no tools, or the
    switch is off); ``split_prefill`` and its span are set only when it was "done".
    """

    index: int
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int
    sent_t: float
    first_token_t: float | None
    end_t: float
    finish_reason: str
    tools: tuple[ToolSpan, ...]
    split_prefill: PrefillStats | None = None
    split_prefill_span: tuple[float, float] | None = None
    divergence: Divergence | None = None
    split_outcome: SplitOutcome | None = None

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_t is None else self.first_token_t - self.sent_t

    @property
    def tool_overlap_s(self) -> float:
        """Tool time hidden under this call's decode or the split prefill."""
        total = 0.0
        windows = [(self.sent_t, self.end_t)]
        if self.split_prefill_span is not None:
            windows.append(self.split_prefill_span)
        for span in self.tools:
            covered = 0.0
            for lo, hi in windows:
                covered += max(0.0, min(hi, span.end_t) - max(lo, span.start_t))
            total += min(covered, span.duration_s)
        return total


@dataclass(frozen=True, slots=True)
class RunResult:
    """Everything one turn of an agent run produced.

    ``ftr_s``: arrival to the first token of the final answer (None if no final answer).
    ``e2e_s``: arrival to the last token of the final answer (or of the run).
    ``trace_id``: the OpenTelemetry trace of the run's spans (32 hex digits), when traced.
    """

    run_id: RunId
    status: RunStatus
    final_text: str
    messages: tuple[ChatMessage, ...]
    iterations: tuple[IterationRecord, ...]
    arrival_t: float
    ftr_s: float | None
    e2e_s: float
    error: str | None = None
    trace_id: str | None = None

    @property
    def tool_spans(self) -> tuple[ToolSpan, ...]:
        return tuple(s for it in self.iterations for s in it.tools)

    @property
    def tool_time_s(self) -> float:
        return sum(s.duration_s for s in self.tool_spans)

    @property
    def tool_overlap_s(self) -> float:
        return sum(it.tool_overlap_s for it in self.iterations)

    @property
    def cached_tokens(self) -> tuple[int, ...]:
        """Cached prompt tokens of each LLM call."""
        return tuple(it.cached_tokens for it in self.iterations)

    @property
    def divergences(self) -> Sequence[Divergence]:
        return [it.divergence for it in self.iterations if it.divergence is not None]

    def timing_line(self) -> str:
        """One human line: FTR, E2E, LLM calls, tool time and how much of it was hidden."""
        ftr = f"{self.ftr_s:.2f}s" if self.ftr_s is not None else "n/a"
        share = self.tool_overlap_s / self.tool_time_s if self.tool_time_s else 0.0
        cached = sum(self.cached_tokens)
        prompt = sum(it.prompt_tokens for it in self.iterations)
        return (
            f"FTR {ftr} | E2E {self.e2e_s:.2f}s | {len(self.iterations)} LLM calls | "
            f"tools {self.tool_time_s:.2f}s ({share:.0%} overlapped) | "
            f"cached {cached}/{prompt} prompt tokens"
        )
