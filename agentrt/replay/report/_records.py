"""What the replay driver records per agent request, and the timing derived from it.

All times are seconds on one monotonic clock (any origin); ``arrival_t`` is when the
request was *due* to arrive, so a driver that falls behind its schedule shows up as
latency rather than disappearing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

CallKind = Literal["generate", "prefill"]


def _check_times(owner: str, **times: float | None) -> None:
    for name, t in times.items():
        if t is not None and not math.isfinite(t):
            raise ValueError(f"{owner}.{name} must be a finite time, got {t!r}")


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One engine request of a run.

    ``generate``: an LLM call of the agent loop (its tokens count for TTFT and hit
    rate). ``prefill``: a prefill-only request (split prefill), which warms the cache
    and produces no output the agent sees. ``start_t`` is submission, so the in-flight
    window ``[start_t, end_t]`` includes queueing. ``prompt_ids``/``output_ids`` are the
    token ids, kept only to compute the theoretical maximum hit rate (empty: not
    recorded).
    """

    kind: CallKind
    start_t: float
    first_token_t: float | None
    end_t: float
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int
    prompt_ids: tuple[int, ...] = ()
    output_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _check_times(
            "CallRecord", start_t=self.start_t, first_token_t=self.first_token_t, end_t=self.end_t
        )
        first = self.start_t if self.first_token_t is None else self.first_token_t
        if not self.start_t <= first <= self.end_t:
            raise ValueError(
                f"CallRecord: times must satisfy start_t <= first_token_t <= end_t, got "
                f"{self.start_t}, {self.first_token_t}, {self.end_t}"
            )
        if not 0 <= self.cached_tokens <= self.prompt_tokens:
            raise ValueError(
                f"CallRecord.cached_tokens must be in [0, prompt_tokens={self.prompt_tokens}],"
                f" got {self.cached_tokens}"
            )
        if self.output_tokens < 0:
            raise ValueError(f"CallRecord.output_tokens must be >= 0, got {self.output_tokens}")

    @property
    def ttft_s(self) -> float | None:
        """Submission to first token (``None`` when no token came)."""
        return None if self.first_token_t is None else self.first_token_t - self.start_t


@dataclass(frozen=True, slots=True)
class ToolRecord:
    """One tool execution: from the moment it started to the moment its result was in."""

    name: str
    start_t: float
    end_t: float

    def __post_init__(self) -> None:
        _check_times("ToolRecord", start_t=self.start_t, end_t=self.end_t)
        if self.end_t < self.start_t:
            raise ValueError(
                f"ToolRecord {self.name!r}: end_t {self.end_t} < start_t {self.start_t}"
            )

    @property
    def duration_s(self) -> float:
        return self.end_t - self.start_t


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One replayed agent request in one mode.

    ``calls`` are in submission order; the last ``generate`` call is the final answer
    unless ``error`` is set (then the request failed and has no FTR). ``final_token_times``
    are the arrival times of the final answer's tokens (for the fluidity index).
    ``run_id`` names the agent run (its spans carry it as ``agentrt.run.id``);
    ``trace_ids`` are the OpenTelemetry traces of its turns, when tracing was on.
    """

    request_id: str
    mode: str
    arrival_t: float
    calls: tuple[CallRecord, ...]
    tools: tuple[ToolRecord, ...] = ()
    final_token_times: tuple[float, ...] = ()
    error: str | None = None
    run_id: str | None = None
    trace_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_times("RequestRecord", arrival_t=self.arrival_t)

    @property
    def final_call(self) -> CallRecord | None:
        """The final answer's call, or ``None`` when the request failed."""
        if self.error is not None:
            return None
        for call in reversed(self.calls):
            if call.kind == "generate":
                return call
        return None

    @property
    def ok(self) -> bool:
        """Finished with a final answer that produced at least one token."""
        final = self.final_call
        return final is not None and final.first_token_t is not None

    @property
    def ftr_s(self) -> float | None:
        """Arrival to the first token of the final answer."""
        final = self.final_call
        if final is None or final.first_token_t is None:
            return None
        return final.first_token_t - self.arrival_t

    @property
    def e2e_s(self) -> float | None:
        """Arrival to the last token of the final answer."""
        final = self.final_call
        if final is None or final.first_token_t is None:
            return None
        return final.end_t - self.arrival_t

    @property
    def tool_time_s(self) -> float:
        """Sum of tool durations (parallel tools each count in full)."""
        return sum(t.duration_s for t in self.tools)

    @property
    def tool_overlap_s(self) -> float:
        """Tool time hidden under this run's own LLM work.

        For each tool span, the length of its intersection with the union of the run's
        in-flight engine windows ``[start_t, end_t]`` (generate and prefill calls),
        summed over spans. Like ``tool_time_s``, parallel tools each count, so
        ``tool_overlap_s <= tool_time_s`` always.
        """
        windows = merge_intervals((c.start_t, c.end_t) for c in self.calls)
        return sum(covered(t.start_t, t.end_t, windows) for t in self.tools)


def merge_intervals(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Union of closed intervals as sorted, disjoint intervals."""
    merged: list[tuple[float, float]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def covered(lo: float, hi: float, windows: Sequence[tuple[float, float]]) -> float:
    """Length of ``[lo, hi]`` that lies inside the disjoint ``windows``."""
    return sum(max(0.0, min(hi, w_hi) - max(lo, w_lo)) for w_lo, w_hi in windows)
