"""``agentrt replay --engine twin``, the validation table and the results-page section.

A measured profile of a config-only model folder stands in for a real one (no weights,
byte tokenizer), so these run without any engine.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from twin_helpers import tiny_profile_file

from agentrt.cli import main as cli
from agentrt.engine._twin_model import ModelSpec
from agentrt.replay.report._twin_compare import Cell, compare, passes, render
from agentrt.replay.report._twin_compare import main as compare_main
from agentrt.replay.report._twin_page import BEGIN, END, replace_section
from agentrt.replay.report._twin_page import main as page_main


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_profile_file(tmp_path_factory.mktemp("tiny-llama"))


def replay(profile: Path, out: Path, *extra: str) -> dict[str, Any]:
    args = [
        "replay", "--synthetic", "--synthetic-requests", "3", "--synthetic-calls", "2,3",
        "--token-scale", "1/8", "--tool-factor", "3.1", "--rates", "0.5,2",
        "--modes", "baseline,all", "--engine", "twin", "--profile", str(profile),
        "--no-plots", "--out", str(out), *extra,
    ]  # fmt: skip
    assert cli(args) == 0
    report: dict[str, Any] = orjson.loads((out / "report.json").read_bytes())
    return report


@pytest.fixture(scope="module")
def reports(profile: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with two replays on the same twin ("a", "b") and one on a smaller budget."""
    root = tmp_path_factory.mktemp("reports")
    replay(profile, root / "a")
    replay(profile, root / "b")
    replay(profile, root / "small", "--max-num-batched-tokens", "64")
    return root


def _load(folder: Path) -> dict[str, Any]:
    report: dict[str, Any] = orjson.loads((folder / "report.json").read_bytes())
    return report


def test_a_twin_replay_is_simulated_and_repeatable(reports: Path) -> None:
    first, second = _load(reports / "a"), _load(reports / "b")
    engine = first["config"]["engine"]
    assert engine["simulated"] is True and engine["cost"]["kind"] == "measured"
    assert engine["num_blocks"] == 400 and engine["max_num_batched_tokens"] == 256
    assert engine["twin_speed"]["steps"] > 0 and engine["twin_speed"]["simulated_s"] > 0
    for run in first["runs"]:
        assert run["summary"]["n_requests"] == 3 and run["summary"]["n_failed"] == 0
        assert run["config"]["engine_prefix_cache"]["queries"] > 0
    # Simulated time does not depend on the machine: the same replay gives the same FTRs.
    ftrs = [[rec["ftr_s"] for rec in run["records"]] for run in first["runs"]]
    assert ftrs == [[rec["ftr_s"] for rec in run["records"]] for run in second["runs"]]


def test_kv_cache_bytes_sizes_the_twins_cache(profile: Path, tmp_path: Path) -> None:
    # Ignoring the flag gave the twin the profile's 400 blocks while the real engine beside
    # it had the cache the flag asked for (the pressure replay's comparison said so).
    report = replay(profile, tmp_path / "kv", "--kv-cache-bytes", "2MiB")
    per_token = ModelSpec.load(profile.parent, "float32").kv_bytes_per_token
    blocks = report["config"]["engine"]["num_blocks"]
    assert blocks == 2 * 2**20 // (16 * per_token) and blocks != 400


def test_validation_table_checks_ratio_and_sign(reports: Path, tmp_path: Path) -> None:
    cells = compare(_load(reports / "a"), _load(reports / "small"))
    assert [(c.mode, c.load) for c in cells] == [
        ("baseline", 0.5), ("all", 0.5), ("baseline", 2.0), ("all", 2.0)
    ]  # fmt: skip
    assert all(c.real_ftr_s and c.twin_ftr_s for c in cells)
    assert cells[0].same_sign is None and cells[1].same_sign is not None
    out = tmp_path / "cmp.md"
    code = compare_main([str(reports / "a"), str(reports / "small"), "--out", str(out)])
    assert code == 0 and "| all | 2 |" in out.read_text()
    assert json.loads(out.with_suffix(".json").read_text())["tolerance"] == 0.15


def test_verdict_needs_every_cell_within_tolerance_and_every_sign_equal() -> None:
    good = [
        Cell("baseline", 1, 10, 11, None, None),
        Cell("all", 1, 8, 8.5, None, None, -0.2, -0.23),
    ]
    assert passes(good, 0.15) and "**pass**" in render(good, 0.15, "t")
    far = [Cell("baseline", 1, 10, 12, None, None)]
    assert not passes(far, 0.15)
    flipped = [Cell("all", 1, 10, 10, None, None, -0.1, 0.05)]
    assert not passes(flipped, 0.15) and "**fail**" in render(flipped, 0.15, "t")


def test_a_change_the_real_engine_cannot_tell_from_zero_agrees_within_its_interval() -> None:
    # Real +4% with a 95% interval of [-3%, +9%]: indistinguishable from no change.
    noise = Cell("token_log", 1, 10.4, 10, None, None, 0.04, 0.0, -0.03, 0.09)
    assert noise.same_sign is False and noise.agrees is True
    assert passes([noise], 0.15) and "| ~ |" in render([noise], 0.15, "t")
    # The twin's change outside the real interval: not something the real engine measured.
    outside = Cell("token_log", 1, 10.4, 10, None, None, 0.04, -0.05, -0.03, 0.09)
    assert outside.agrees is False and not passes([outside], 0.15)
    # A real change whose interval excludes 0 needs the same sign.
    real_effect = Cell("cache_hints", 1, 11, 10, None, None, 0.1, 0.0, 0.01, 0.17)
    assert real_effect.agrees is False
    # Two equal medians divide to 1 +- an ulp: no change, so no sign.
    tiny = Cell("all", 1, 10, 10, None, None, 0.02, -1e-16, -0.05, 0.08)
    assert tiny.same_sign is False and tiny.agrees is True


def test_the_real_change_interval_comes_from_the_real_requests(reports: Path) -> None:
    cells = compare(_load(reports / "a"), _load(reports / "small"))
    for c in cells:
        if c.mode == "baseline":
            assert c.real_change_low is None
        else:
            assert c.real_change_low is not None and c.real_change_high is not None
            assert -1 < c.real_change_low <= c.real_change_high


def test_twin_section_replaces_itself_and_keeps_the_page(reports: Path) -> None:
    page = reports / "RESULTS.md"
    page.write_text("# Results\n\nmeasured tables\n")
    for _ in range(2):
        assert page_main([str(page), "--slim", "--whatif", str(reports / "small")]) == 0
    assert all(run["records"] == [] for run in _load(reports / "small")["runs"])
    text = page.read_text()
    assert text.startswith("# Results\n\nmeasured tables\n")
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert "simulated" in text and "| small (simulated) | all |" in text
    assert "(small/twin_ftr_vs_load.png)" in text
    assert (reports / "small" / "twin_ftr_vs_load.png").is_file()
    assert replace_section("x\n", f"{BEGIN}\nnew\n{END}\n") == f"x\n\n{BEGIN}\nnew\n{END}\n"


def test_the_a_a_control_band_tells_noise_from_an_effect() -> None:
    # Real +10%, its bootstrap interval excluding 0 (the bootstrap cannot see a run that
    # ran slow as a whole), the twin at 0. The baseline run again moved by 12%: noise.
    within = Cell("cache_hints", 1, 11, 10, None, None, 0.10, 0.0, 0.01, 0.17, 0.12)
    assert within.same_sign is False and within.agrees is True
    # The same change where the control moved by 5% only: an effect the twin missed.
    beyond = dataclasses.replace(within, noise_band=0.05)
    assert beyond.agrees is False and not passes([beyond], 0.15)
    # A twin change outside the band is not noise either.
    assert dataclasses.replace(within, twin_change=-0.13).agrees is False
    # The control is the yardstick, not judged for agreement.
    control = Cell("baseline_again", 1, 10.5, 10, None, None, 0.05, 0.0, None, None, 0.05, True)
    assert control.agrees is None and passes([control], 0.15)
    assert "| A/A |" in render([control], 0.15, "t")


def test_the_control_replays_the_baseline_and_its_real_change_sets_the_band(
    profile: Path, tmp_path: Path
) -> None:
    twin = replay(profile, tmp_path / "aa", "--modes", "baseline,all,baseline_again")
    assert [r["mode"] for r in twin["runs"]][:3] == ["baseline", "all", "baseline_again"]
    # The deterministic twin runs the control as the baseline (to the float: its clock
    # starts elsewhere).
    cells = compare(twin, twin)
    controls = [c for c in cells if c.control]
    assert [c.load for c in controls] == [0.5, 2.0]
    assert all(abs(c.twin_change or 1) < 1e-9 for c in controls)
    assert all(c.noise_band is not None and c.noise_band < 1e-9 for c in cells)
    # A real engine whose control ran 8% slow at one load and 3% fast at the other.
    real = json.loads(json.dumps(twin))
    for run in real["runs"]:
        if run["mode"] == "baseline_again":
            run["summary"]["ftr_p50_s"] *= 1.08 if run["load"] == 0.5 else 0.97
    cells = compare(real, twin)
    assert {round(c.noise_band or 0, 6) for c in cells} == {0.08}
    assert "noise band is ±8.0%" in render(cells, 0.15, "t")
