"""One run (one mode at one load) reduced to the numbers a report compares."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from ._metrics import fluidity_index, percentile, theoretical_max_hits
from ._records import CallRecord, RequestRecord


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Latency, cache and tool numbers of one run. ``None``: nothing to measure.

    Latencies are over requests that finished (``n_requests - n_failed``). Cache
    numbers are over every ``generate`` call (prefill-only calls are counted apart, so
    split prefill cannot inflate the denominator). ``max_hit_rate`` is the theoretical
    maximum for the same prompts (see ``theoretical_max_hits``); ``None`` unless a block
    size was given and every generate call recorded its prompt ids. Throughput is
    finished requests per second over the span from the first arrival to the last
    final token. ``tbt_mean_s`` is decode time per token over all generate calls
    (``sum(end - first token) / sum(output tokens - 1)``). ``diverged_calls`` counts
    follow-up generate calls whose prompt does not start with the previous call's prompt
    plus its output (a re-rendered history that no longer matches what the model
    produced); ``None`` unless every generate call recorded prompt and output ids.
    """

    mode: str
    n_requests: int
    n_failed: int
    ftr_p50_s: float | None
    ftr_p90_s: float | None
    ftr_p99_s: float | None
    e2e_p50_s: float | None
    e2e_p90_s: float | None
    e2e_p99_s: float | None
    ttft_mean_s: float | None
    tbt_mean_s: float | None
    n_llm_calls: int
    n_prefill_calls: int
    prompt_tokens: int
    cached_tokens: int
    hit_rate: float | None
    max_hit_rate: float | None
    span_s: float | None
    throughput_rps: float | None
    tool_time_s: float
    tool_overlap_s: float
    overlap_share: float | None
    fluidity_mean: float | None
    diverged_calls: int | None


def _pcts(values: list[float]) -> tuple[float | None, float | None, float | None]:
    if not values:
        return None, None, None
    return percentile(values, 50), percentile(values, 90), percentile(values, 99)


def summarize(
    records: Sequence[RequestRecord],
    *,
    block_size: int | None = None,
    ttft_deadline_s: float | None = None,
    tbt_deadline_s: float | None = None,
) -> RunSummary:
    """Summarize the records of one run (all of one mode).

    Args:
        records: one per agent request.
        block_size: the engine's KV block size; enables ``max_hit_rate``.
        ttft_deadline_s, tbt_deadline_s: enable ``fluidity_mean``: the mean fluidity
            index of the final answers, deadlines counted from the final call's
            submission.

    Raises:
        ValueError: when the records mix modes or there are none.
    """
    if not records:
        raise ValueError("summarize needs at least one record")
    modes = {r.mode for r in records}
    if len(modes) != 1:
        raise ValueError(f"records mix modes {sorted(modes)}: summarize one run at a time")
    done = [r for r in records if r.ok]
    ftr = [r.ftr_s for r in done if r.ftr_s is not None]
    e2e = [r.e2e_s for r in done if r.e2e_s is not None]
    calls = [c for r in records for c in r.calls if c.kind == "generate"]
    ttfts = [c.ttft_s for c in calls if c.ttft_s is not None]
    prompt = sum(c.prompt_tokens for c in calls)
    cached = sum(c.cached_tokens for c in calls)
    tool_time = sum(r.tool_time_s for r in records)
    overlap = sum(r.tool_overlap_s for r in records)
    span = None
    if done:
        last = max(r.arrival_t + (r.e2e_s or 0.0) for r in done)
        span = last - min(r.arrival_t for r in records)
    f50, f90, f99 = _pcts(ftr)
    e50, e90, e99 = _pcts(e2e)
    return RunSummary(
        mode=modes.pop(),
        n_requests=len(records),
        n_failed=len(records) - len(done),
        ftr_p50_s=f50,
        ftr_p90_s=f90,
        ftr_p99_s=f99,
        e2e_p50_s=e50,
        e2e_p90_s=e90,
        e2e_p99_s=e99,
        ttft_mean_s=sum(ttfts) / len(ttfts) if ttfts else None,
        tbt_mean_s=_tbt(calls),
        n_llm_calls=len(calls),
        n_prefill_calls=sum(1 for r in records for c in r.calls if c.kind == "prefill"),
        prompt_tokens=prompt,
        cached_tokens=cached,
        hit_rate=cached / prompt if prompt else None,
        max_hit_rate=_max_hit_rate(calls, block_size),
        span_s=span,
        throughput_rps=len(done) / span if span else None,
        tool_time_s=tool_time,
        tool_overlap_s=overlap,
        overlap_share=overlap / tool_time if tool_time > 0 else None,
        fluidity_mean=_fluidity(done, ttft_deadline_s, tbt_deadline_s),
        diverged_calls=_divergences(records),
    )


def _tbt(calls: list[CallRecord]) -> float | None:
    decoded = [c for c in calls if c.first_token_t is not None and c.output_tokens > 1]
    gaps = sum(c.output_tokens - 1 for c in decoded)
    if not gaps:
        return None
    return sum(c.end_t - (c.first_token_t or c.end_t) for c in decoded) / gaps


def _divergences(records: Sequence[RequestRecord]) -> int | None:
    count = 0
    for r in records:
        calls = [c for c in r.calls if c.kind == "generate"]
        if any(not c.prompt_ids or not c.output_ids for c in calls):
            return None
        for prev, call in itertools.pairwise(calls):
            history = prev.prompt_ids + prev.output_ids
            count += call.prompt_ids[: len(history)] != history
    return count


def _max_hit_rate(calls: list[CallRecord], block_size: int | None) -> float | None:
    if block_size is None or not calls or any(not c.prompt_ids for c in calls):
        return None
    # Arrival order at the engine; the sort is stable, so ties keep record order.
    ordered = sorted(calls, key=lambda c: c.start_t)
    hits = theoretical_max_hits(
        [c.prompt_ids for c in ordered],
        block_size,
        outputs=[c.output_ids for c in ordered],
    )
    total = sum(len(c.prompt_ids) for c in ordered)
    return hits / total if total else None


def _fluidity(
    done: list[RequestRecord], ttft_deadline_s: float | None, tbt_deadline_s: float | None
) -> float | None:
    if ttft_deadline_s is None or tbt_deadline_s is None:
        return None
    values = []
    for r in done:
        final = r.final_call
        if final is None or not r.final_token_times:
            continue
        v = fluidity_index(
            r.final_token_times, ttft_deadline_s, tbt_deadline_s, start_t=final.start_t
        )
        if v is not None:
            values.append(v)
    return sum(values) / len(values) if values else None
