"""Metrics on hand-computed cases: FTR and overlap, run summaries, the theoretical maximum
hit rate, load at target, fluidity; and the report writer's files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from agentrt.replay import (
    CallRecord,
    LoadAtTarget,
    Ratio,
    ReplayRun,
    RequestRecord,
    ToolRecord,
    fluidity_index,
    load_at_target,
    percentile,
    summarize,
    target_table,
    theoretical_max_hits,
    write_report,
)
from agentrt.replay.report._results import ratio


def _gen(
    start: float, first: float | None, end: float, prompt: int, cached: int, out: int = 10
) -> CallRecord:
    return CallRecord("generate", start, first, end, prompt, cached, out)


def _records() -> list[RequestRecord]:
    r1 = RequestRecord(
        "r1",
        "baseline",
        0.0,
        calls=(_gen(0.0, 0.5, 1.0, 100, 0), _gen(3.0, 3.2, 4.0, 150, 96)),
        tools=(ToolRecord("search", 1.0, 3.0),),
    )
    r2 = RequestRecord(
        "r2",
        "baseline",
        1.0,
        calls=(
            _gen(1.0, 1.4, 2.0, 100, 64),
            CallRecord("prefill", 2.0, None, 2.5, 120, 100, 0),
            _gen(3.0, 3.5, 4.5, 200, 160),
        ),
        tools=(ToolRecord("search", 1.5, 3.5), ToolRecord("fetch", 1.8, 2.2)),
    )
    r3 = RequestRecord(
        "r3", "baseline", 2.0, calls=(_gen(2.0, 2.3, 2.6, 50, 0),), error="engine error"
    )
    return [r1, r2, r3]


def test_ftr_and_e2e_come_from_the_final_answer_call() -> None:
    r1, r2, r3 = _records()
    assert r1.ftr_s == pytest.approx(3.2) and r1.e2e_s == pytest.approx(4.0)
    assert r2.ftr_s == pytest.approx(2.5) and r2.e2e_s == pytest.approx(3.5)
    assert (r3.ftr_s, r3.e2e_s, r3.ok) == (None, None, False)


def test_tool_overlap_counts_only_time_under_the_runs_engine_windows() -> None:
    r1, r2, _ = _records()
    assert r1.tool_overlap_s == 0.0  # touches the windows only at their ends
    # windows [1.0, 2.5] (generate + prefill merged) and [3.0, 4.5]:
    # search [1.5, 3.5] -> 1.0 + 0.5; fetch [1.8, 2.2] -> 0.4
    assert r2.tool_overlap_s == pytest.approx(1.9)
    assert r2.tool_time_s == pytest.approx(2.4)


def test_summary_of_a_hand_computed_run() -> None:
    s = summarize(_records())
    assert (s.mode, s.n_requests, s.n_failed) == ("baseline", 3, 1)
    assert s.ftr_p50_s == pytest.approx(2.85)
    assert s.ftr_p90_s == pytest.approx(3.13)
    assert s.ftr_p99_s == pytest.approx(3.193)
    assert s.e2e_p50_s == pytest.approx(3.75)
    assert s.ttft_mean_s == pytest.approx(0.38)  # (0.5 + 0.2 + 0.4 + 0.5 + 0.3) / 5
    assert (s.n_llm_calls, s.n_prefill_calls) == (5, 1)
    assert (s.prompt_tokens, s.cached_tokens) == (600, 320)
    assert s.hit_rate == pytest.approx(320 / 600)
    assert s.span_s == pytest.approx(4.5) and s.throughput_rps == pytest.approx(2 / 4.5)
    assert s.tool_time_s == pytest.approx(4.4) and s.tool_overlap_s == pytest.approx(1.9)
    assert s.overlap_share == pytest.approx(1.9 / 4.4)
    assert s.tbt_mean_s == pytest.approx((0.5 + 0.8 + 0.6 + 1.0 + 0.3) / 45)  # 5 calls x 9 gaps
    assert s.max_hit_rate is None and s.fluidity_mean is None and s.diverged_calls is None


def test_summary_refuses_mixed_modes() -> None:
    r1, *_ = _records()
    other = RequestRecord("x", "all", 0.0, calls=(_gen(0, 1, 2, 10, 0),))
    with pytest.raises(ValueError, match="mix modes"):
        summarize([r1, other])


def test_summary_max_hit_rate_uses_recorded_prompts_in_submission_order() -> None:
    def call(start: float, prompt: tuple[int, ...], cached: int) -> CallRecord:
        return CallRecord(
            "generate", start, start + 0.1, start + 0.2, len(prompt), cached, 1, prompt_ids=prompt
        )

    records = [
        RequestRecord("b", "m", 1.0, calls=(call(1.0, (1, 2, 3, 4, 9), 2),)),
        RequestRecord("a", "m", 0.0, calls=(call(0.0, (1, 2, 3, 4, 5), 0),)),
    ]
    s = summarize(records, block_size=2)
    assert s.max_hit_rate == pytest.approx(4 / 10)  # "a" first: "b" can hit 2 blocks


def test_summary_counts_prompts_that_do_not_extend_the_previous_call() -> None:
    def call(start: float, prompt: tuple[int, ...], output: tuple[int, ...]) -> CallRecord:
        return CallRecord(
            "generate",
            start,
            start + 0.1,
            start + 0.2,
            len(prompt),
            0,
            len(output),
            prompt_ids=prompt,
            output_ids=output,
        )

    kept = RequestRecord(
        "k", "m", 0.0, calls=(call(0, (1, 2), (3, 4)), call(1, (1, 2, 3, 4, 5), (6,)))
    )
    lost = RequestRecord(
        "l", "m", 0.0, calls=(call(0, (1, 2), (3, 4)), call(1, (1, 2, 3, 9, 5), (6,)))
    )
    assert summarize([kept, lost]).diverged_calls == 1


def test_summary_fluidity_counts_from_the_final_calls_submission() -> None:
    r = RequestRecord(
        "r",
        "m",
        0.0,
        calls=(_gen(10.0, 12.0, 12.35, 10, 0),),
        final_token_times=(12.0, 12.05, 12.3, 12.35),
    )
    assert summarize([r], ttft_deadline_s=1.0, tbt_deadline_s=0.1).fluidity_mean == 0.5


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 90) == pytest.approx(3.7)
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_theoretical_max_counts_whole_shared_prefix_blocks() -> None:
    prompts = [[1, 2, 3, 4, 5], [1, 2, 3, 4, 9, 9], [1, 2, 7, 7], [5, 5]]
    # p1 hits 2 blocks (4 tokens); p2 hits (1, 2) only; p3 shares nothing.
    assert theoretical_max_hits(prompts, 2) == 6


def test_theoretical_max_never_counts_the_last_prompt_token() -> None:
    assert theoretical_max_hits([[1, 2, 3, 4], [1, 2, 3, 4]], 2) == 2  # (4 - 1) // 2 blocks


def test_theoretical_max_needs_the_whole_prefix_not_just_equal_blocks() -> None:
    assert theoretical_max_hits([[1, 2, 3, 4], [9, 9, 3, 4, 1, 2, 0]], 2) == 0


def test_theoretical_max_counts_generated_tokens_as_cached() -> None:
    prompts = [[1, 2, 3], [1, 2, 3, 4, 5, 6, 7]]
    assert theoretical_max_hits(prompts, 2) == 2
    # After the first call, KV exists for 1 2 3 4 5 (its last output token, 6, is never fed).
    assert theoretical_max_hits(prompts, 2, outputs=[[4, 5, 6], [8]]) == 4


def test_load_at_target_interpolates_at_the_first_crossing() -> None:
    pts = [(4.0, 6.0), (1.0, 1.0), (2.0, 2.0)]
    assert load_at_target(pts, 4.0) == LoadAtTarget(3.0, "interpolated")
    assert load_at_target([(1, 1.0), (2, 5.0), (3, 2.0)], 4.0) == LoadAtTarget(1.75, "interpolated")
    assert load_at_target([(1, 4.0), (2, 8.0)], 4.0) == LoadAtTarget(1.0, "interpolated")


def test_load_at_target_bounds() -> None:
    assert load_at_target([(1, 5.0), (2, 6.0)], 4.0) is None
    assert load_at_target([(1, 1.0), (2, 2.0)], 4.0) == LoadAtTarget(2.0, "lower_bound")
    with pytest.raises(ValueError, match="twice"):
        load_at_target([(1, 1.0), (1, 2.0)], 4.0)
    with pytest.raises(ValueError):
        load_at_target([], 4.0)


def test_fluidity_restarts_deadlines_after_a_miss() -> None:
    assert fluidity_index([0.5, 0.6, 1.0, 1.05, 1.3], 1.0, 0.1) == 1.0
    # due 1.0 (missed at 2.0) -> restart: 2.1 met, 2.2 missed (2.3) -> restart: 2.4 met
    assert fluidity_index([2.0, 2.05, 2.3, 2.35], 1.0, 0.1) == 0.5
    assert fluidity_index([12.0, 12.05], 1.0, 0.1, start_t=10.0) == 0.5
    assert fluidity_index([], 1.0, 0.1) is None


def test_ratio_carries_its_direction_of_uncertainty() -> None:
    exact, lower = LoadAtTarget(2.0, "interpolated"), LoadAtTarget(3.0, "lower_bound")
    assert ratio(exact, LoadAtTarget(1.0, "interpolated")) == Ratio(2.0, "exact")
    assert ratio(lower, exact) == Ratio(1.5, "at_least")
    assert ratio(exact, lower) == Ratio(2 / 3, "at_most")
    assert ratio(lower, lower) == Ratio(1.0, "unknown")
    assert ratio(None, exact) is None


def _run(mode: str, load: float, ftrs: list[float]) -> ReplayRun:
    records = tuple(
        RequestRecord(
            f"{mode}-{i}",
            mode,
            0.0,
            calls=(_gen(0.0, f, f + 1.0, 100, 50),),
            tools=(ToolRecord("t", 0.0, 0.5),),
        )
        for i, f in enumerate(ftrs)
    )
    return ReplayRun(mode, load, summarize(records), records)


def _results() -> list[ReplayRun]:
    return [
        _run("all", 1.0, [1.0]),
        _run("all", 2.0, [3.0]),
        _run("baseline", 1.0, [2.0]),
        _run("baseline", 2.0, [6.0]),
    ]


def test_target_table_compares_modes_to_the_baseline() -> None:
    base, best = target_table(_results(), 4.0)
    assert base.mode == "baseline" and base.median == LoadAtTarget(1.5, "interpolated")
    assert best.median == LoadAtTarget(2.0, "lower_bound")
    assert best.median_ratio is not None and best.median_ratio.bound == "at_least"
    assert best.median_ratio.value == pytest.approx(4 / 3)


def test_report_writes_json_csv_markdown_and_plots(tmp_path: Path) -> None:
    files = write_report(
        _results(),
        tmp_path / "out",
        ftr_target_s=4.0,
        config={"model": "test", "token_scale": 1 / 64},
    )
    doc = json.loads(files.json.read_text())
    assert doc["config"]["model"] == "test" and len(doc["runs"]) == 4
    assert doc["runs"][0]["records"][0]["ftr_s"] is not None
    rows = list(csv.DictReader(files.csv.read_text().splitlines()))
    assert [(r["mode"], r["load"]) for r in rows] == [
        ("baseline", "1.0"),
        ("all", "1.0"),
        ("baseline", "2.0"),
        ("all", "2.0"),
    ]
    md = files.markdown.read_text()
    assert "## Load 1 agent requests/s" in md and "| all | ≥ 2.00 | ≥ 1.33x |" in md
    names = sorted(p.name for p in files.plots)
    assert names == [
        "ftr_cdf_load_1.png",
        "ftr_cdf_load_2.png",
        "ftr_vs_load.png",
        "kv_hit_rate.png",
    ]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in files.plots)


def test_report_refuses_a_mode_measured_twice_at_one_load(tmp_path: Path) -> None:
    results = [*_results(), _run("all", 1.0, [1.5])]
    with pytest.raises(ValueError, match="twice"):
        write_report(results, tmp_path, ftr_target_s=4.0, plots=False)


def test_invalid_records_are_rejected() -> None:
    with pytest.raises(ValueError, match="cached_tokens"):
        CallRecord("generate", 0.0, 0.1, 0.2, 10, 11, 1)
    with pytest.raises(ValueError, match="start_t <= first_token_t"):
        CallRecord("generate", 1.0, 0.5, 2.0, 10, 0, 1)
    with pytest.raises(ValueError, match="end_t"):
        ToolRecord("t", 2.0, 1.0)
