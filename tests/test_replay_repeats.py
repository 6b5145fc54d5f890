"""``agentrt replay --repeats N``: different arrival draws per repeat, medians with 95%
intervals and ratios to the baseline with theirs (issue 14)."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import orjson
import pytest

from agentrt._agent import Switches
from agentrt.cli._replay import add_arguments, main
from agentrt.engine import TimingModel
from agentrt.engine._machine import machine_info
from agentrt.replay import load_trace
from agentrt.replay.report._intervals import Interval, pooled_runs, repeat_cells
from agentrt.replay.report._page import render_page
from agentrt.replay.report._records import CallRecord, RequestRecord
from agentrt.replay.report._report import write_report
from agentrt.replay.report._results import CONTROL_MODE, ReplayRun
from agentrt.replay.report._summary import summarize
from agentrt.replay.run._driver import mode_order, redrawn, replay_all
from agentrt.replay.run._plan import build_plan
from agentrt.replay.run._sources import (
    PoissonLoad,
    RecordedLoad,
    ReplayMode,
    ScriptedSource,
    mode_switches,
    replay_mode,
)
from agentrt.testing import run_virtual

TRACES = Path(__file__).resolve().parents[1] / "traces"


def _run(mode: str, repeat: int, ftrs: list[float], load: float = 1.0) -> ReplayRun:
    records = tuple(
        RequestRecord(
            f"r{i}", mode, 0.0, calls=(CallRecord("generate", 0.0, f, f + 1.0, 100, 0, 10),)
        )
        for i, f in enumerate(ftrs)
    )
    return ReplayRun(mode, load, summarize(records), records, repeat=repeat)


FTRS = [[1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 3.0, 4.0, 5.0, 9.0], [1.5, 2.5, 3.5, 6.0, 7.0]]


def test_each_repeat_draws_its_own_poisson_arrivals_and_recorded_ones_stay() -> None:
    assert redrawn(PoissonLoad(2.0, seed=5), 2) == PoissonLoad(2.0, seed=7)
    assert redrawn(RecordedLoad(0.5), 2) == RecordedLoad(0.5)


def test_a_mode_equal_to_the_baseline_has_ratio_one_with_no_width() -> None:
    runs = [_run(m, k, f) for k, f in enumerate(FTRS) for m in ("baseline", "same")]
    base, same = repeat_cells(runs, resamples=200)
    assert same.ratios["ftr_p50"] == Interval(1.0, 1.0, 1.0)
    # The pooled median of all 15 requests, inside an interval that has some width.
    med = base.medians["ftr_p50"]
    assert med.value == 3.5 and med.low < med.value < med.high
    assert "ftr_p50" not in base.ratios and base.repeats == 3


def test_a_mode_twice_as_fast_per_request_has_ratio_half_exactly() -> None:
    runs = [_run("baseline", k, f) for k, f in enumerate(FTRS)]
    runs += [_run("fast", k, [x / 2 for x in f]) for k, f in enumerate(FTRS)]
    _, fast = repeat_cells(runs, resamples=200)
    # Paired resampling: the same requests of the same repeats in both modes.
    assert fast.ratios["ftr_p50"] == Interval(0.5, 0.5, 0.5)


def test_intervals_are_reproducible_and_contain_the_point() -> None:
    runs = [_run("baseline", k, f) for k, f in enumerate(FTRS)]
    runs += [
        _run("all", k, [x * 0.8 + 0.3 * (i % 2) for i, x in enumerate(f)])
        for k, f in enumerate(FTRS)
    ]
    first = repeat_cells(runs, resamples=300)
    assert first == repeat_cells(runs, resamples=300)
    for cell in first:
        for iv in [*cell.medians.values(), *cell.ratios.values()]:
            assert iv.low <= iv.value <= iv.high


def test_pooled_runs_hold_every_repeat_once_per_mode_and_load() -> None:
    runs = [_run(m, k, f) for k, f in enumerate(FTRS) for m in ("baseline", "all")]
    pooled = pooled_runs(runs)
    assert [(r.mode, len(r.records)) for r in pooled] == [("baseline", 15), ("all", 15)]
    assert pooled[0].summary.ftr_p50_s == 3.5
    single = [_run("baseline", 0, FTRS[0])]
    assert pooled_runs(single) == single


def test_report_with_repeats_writes_intervals_to_json_markdown_and_csv(tmp_path: Path) -> None:
    runs = [_run(m, k, f) for k, f in enumerate(FTRS) for m in ("baseline", "all")]
    files = write_report(runs, tmp_path, ftr_target_s=4.0, plots=False)
    doc = orjson.loads(files.json.read_bytes())
    assert "bootstrap" in doc["repeats"]["method"]
    cells = doc["repeats"]["cells"]
    assert [(c["mode"], c["repeats"]) for c in cells] == [("baseline", 3), ("all", 3)]
    assert set(cells[1]["ratios"]["ftr_p50"]) == {"value", "low", "high"}
    assert len(doc["pooled"]) == 2 and len(doc["runs"]) == 6
    text = files.markdown.read_text()
    assert "with 95% intervals" in text and "| 1 | all | 3 | 3.50 [" in text
    rows = list(csv.DictReader(files.csv.open()))
    assert sorted(r["repeat"] for r in rows) == ["0", "0", "1", "1", "2", "2"]


def test_the_same_mode_load_and_repeat_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="repeat"):
        write_report([_run("all", 0, [1.0]), _run("all", 0, [2.0])], tmp_path, ftr_target_s=1.0)


def test_replay_all_repeats_modes_back_to_back_on_new_arrival_draws() -> None:
    trace = load_trace(TRACES / "sample-websearch.jsonl")
    source = ScriptedSource(TimingModel(), block_size=16)
    plan = build_plan(trace, source.tokenizer, seed=0)

    async def go() -> list[ReplayRun]:
        modes = [mode_switches("baseline"), mode_switches("all")]
        return await replay_all(plan, modes, [PoissonLoad(2.0, seed=3)], source, repeats=3)

    runs = run_virtual(go)
    # Each repeat's modes run back to back; the order rotates (repeat 2 starts with "all").
    assert [(r.repeat, r.mode) for r in runs] == [
        (0, "baseline"),
        (0, "all"),
        (1, "baseline"),
        (1, "all"),
        (2, "all"),
        (2, "baseline"),
    ]
    seeds = [r.config["load"]["seed"] for r in runs]
    assert seeds == [3, 3, 4, 4, 5, 5]
    arrivals = {
        r.repeat: tuple(rec.arrival_t - r.records[0].arrival_t for rec in r.records)
        for r in runs
        if r.mode == "baseline"
    }
    assert len(set(arrivals.values())) == 3


@pytest.mark.parametrize(("n", "repeats"), [(2, 3), (4, 3), (8, 3), (7, 5), (8, 1)])
def test_mode_order_moves_every_mode_and_keeps_the_first_repeat(n: int, repeats: int) -> None:
    modes = list(range(n))
    orders = [mode_order(modes, k, repeats) for k in range(repeats)]
    assert orders[0] == modes
    assert all(sorted(o) == modes for o in orders)
    if 1 < repeats <= n:
        # No mode holds the same place in two repeats.
        for m in modes:
            places = [o.index(m) for o in orders]
            assert len(set(places)) == repeats


def test_cli_repeats_reports_intervals(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = ["--trace", str(TRACES / "sample-websearch.jsonl"), "--engine", "scripted"]
    argv += ["--modes", "baseline,all", "--rates", "2", "--repeats", "2"]
    args = parser.parse_args([*argv, "--out", str(tmp_path), "--no-plots"])
    assert main(args) == 0
    text = (tmp_path / "summary.md").read_text()
    assert "| 2 | all | 2 |" in text and "| baseline | 12/12 |" in text


def test_cli_refuses_zero_repeats() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--synthetic", "--repeats", "0"])


def test_results_page_headline_shows_the_ratio_interval(tmp_path: Path) -> None:
    runs = [_run("baseline", k, f) for k, f in enumerate(FTRS)]
    runs += [_run("all", k, [x / 2 for x in f]) for k, f in enumerate(FTRS)]
    write_report(runs, tmp_path / "ws", ftr_target_s=10.0, plots=False)
    page = render_page([tmp_path / "ws"], tmp_path / "RESULTS.md")
    assert "| ws | all | ≥ 1.00 | ? 1.00x | 1 | 1.75 | 0.50x [0.50, 0.50] |" in page


def test_the_a_a_control_is_the_baseline_under_its_own_name() -> None:
    control = replay_mode(CONTROL_MODE)
    assert control.name == "baseline_again" and control.switches == Switches.baseline()
    assert replay_mode("all-run_priority") == ReplayMode(
        "all-run_priority", mode_switches("all-run_priority")
    )
    with pytest.raises(ValueError, match="baseline_again"):
        replay_mode("baseline-again")


def test_report_records_the_machine_and_the_page_names_the_reports_machine(
    tmp_path: Path,
) -> None:
    runs = [_run("baseline", 0, FTRS[0])]
    write_report(runs, tmp_path / "ws", ftr_target_s=10.0, plots=False)
    report_path = tmp_path / "ws" / "report.json"
    report = json.loads(report_path.read_text())
    machine = report["machine"]
    assert machine == machine_info()  # the dtype-deciding CPU flag among it
    assert isinstance(machine["native_bf16"], bool) and machine["cores"] >= 1
    # The page describes where the report ran, not where the page is rendered.
    report["machine"] = {**machine, "cpu": "Elsewhere CPU 9000", "cores": 64}
    report_path.write_text(json.dumps(report))
    page = render_page([tmp_path / "ws"], tmp_path / "RESULTS.md")
    assert "Machine: Elsewhere CPU 9000, 64 CPUs" in page


def test_report_with_repeats_plots_each_mode_against_the_baseline(tmp_path: Path) -> None:
    runs = [_run(m, k, f) for k, f in enumerate(FTRS) for m in ("baseline", "all")]
    runs += [
        _run(m, k, [x * 2 for x in f], load=2.0)
        for k, f in enumerate(FTRS)
        for m in ("baseline", "all")
    ]
    files = write_report(runs, tmp_path, ftr_target_s=4.0)
    names = sorted(p.name for p in files.plots)
    assert "ftr_ratio_vs_load.png" in names and "ftr_vs_load.png" in names
    assert (tmp_path / "ftr_ratio_vs_load.png").read_bytes().startswith(b"\x89PNG")
