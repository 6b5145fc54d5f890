"""The benchmark commands that need no model run end to end at a small size and write
their table, JSON and plot. Their timings are not asserted (they are measured by running
the commands on a quiet machine); what is asserted would break if the command broke."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrt import cli


def run_cli(*argv: str) -> None:
    assert cli.main(list(argv)) == 0


def test_overhead_bench_measures_both_paths_and_plots(tmp_path: Path) -> None:
    run_cli("bench", "overhead", "--runs", "5", "--repeats", "1", "--out", str(tmp_path))
    res = json.loads((tmp_path / "overhead.json").read_text())
    assert res["agent_s_per_iteration"] > 0 and res["direct_s_per_iteration"] > 0
    assert res["machine"]["cores"] >= 1
    assert (tmp_path / "overhead.png").stat().st_size > 0
    assert "orchestrator overhead" in (tmp_path / "overhead.md").read_text()


def test_scale_bench_leaves_no_session_alive_after_a_wave(tmp_path: Path) -> None:
    run_cli(
        "bench", "scale", "--runs", "40", "--waves", "2", "--tool-s", "0.01", "--out", str(tmp_path)
    )
    res = json.loads((tmp_path / "scale.json").read_text())
    assert res["runs_per_wave"] == 40
    assert [w["live_sessions"] for w in res["waves"]] == [0, 0]
    assert (tmp_path / "scale_memory.png").stat().st_size > 0


def test_agents_bench_refuses_an_unknown_mode_before_starting_an_engine(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["bench", "agents", "--modes", "baseline,turbo"]) == 2
    assert "'turbo'" in capsys.readouterr().err


@pytest.mark.server
def test_server_bench_compares_server_and_in_process_on_the_scripted_engine(
    tmp_path: Path,
) -> None:
    run_cli(
        "bench", "server", "--engines", "scripted", "--decode-steps-ms", "0",
        "--requests", "6", "--concurrency", "2", "--max-tokens", "8", "--out", str(tmp_path),
    )  # fmt: skip
    res = json.loads((tmp_path / "server.json").read_text())
    assert sorted(r["mode"] for r in res["results"]) == ["in-process", "server"]
    assert all(r["tokens_per_s"] > 0 and r["requests"] == 6 for r in res["results"])
    assert set(res["overhead"]) == {res["results"][0]["engine"]}
    assert (tmp_path / "server.png").stat().st_size > 0
    assert "server overhead" in (tmp_path / "server.md").read_text()
