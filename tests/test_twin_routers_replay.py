"""``agentrt replay --engine twin --replicas N --router a,b``: one report per router policy
and the side-by-side comparison (JSON, Markdown, PNG), every figure labelled simulated.

A measured profile of a config-only model folder stands in for a real one (no weights,
byte tokenizer), so these run without any engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from twin_helpers import tiny_profile_file

from agentrt.cli import main as cli


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_profile_file(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def compared(profile: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("routers")
    args = [
        "replay", "--synthetic", "--synthetic-requests", "4", "--synthetic-calls", "3,4",
        "--token-scale", "1/8", "--tool-factor", "3.1", "--rates", "1",
        "--modes", "all", "--engine", "twin", "--profile", str(profile),
        "--replicas", "2", "--router", "round_robin,session_affine", "--out", str(out),
    ]  # fmt: skip
    assert cli(args) == 0
    return out


def _json(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    return doc


def test_each_policy_gets_a_simulated_report_of_its_replicas(compared: Path) -> None:
    for policy in ("round_robin", "session_affine"):
        report = _json(compared / policy / "report.json")
        engine = report["config"]["engine"]
        assert engine["simulated"] is True
        assert (engine["router"], engine["replicas"]) == (policy, 2)
        for run in report["runs"]:
            facts = run["config"]["engine_facts"]
            assert facts["router"] == policy and len(facts["replicas"]) == 2
            assert run["summary"]["n_failed"] == 0


def test_the_comparison_puts_policies_side_by_side(compared: Path) -> None:
    doc = _json(compared / "routers.json")
    assert doc["simulated"] is True and doc["replicas"] == 2
    rows = {(r["policy"], r["load"]): r for r in doc["rows"]}
    assert set(rows) == {("round_robin", 1.0), ("session_affine", 1.0)}
    for r in rows.values():
        assert len(r["replica_kv_hit"]) == 2 and r["ftr_p50_s"] > 0
        assert r["sessions"] == 4
    # Session-affine keeps every run on one replica; round-robin splits them.
    assert rows[("session_affine", 1.0)]["sessions_split"] == 0
    assert rows[("round_robin", 1.0)]["sessions_split"] > 0
    text = (compared / "routers.md").read_text()
    assert "simulated" in text and "| session_affine |" in text
    assert (compared / "routers.png").stat().st_size > 0


def test_replicas_need_the_twin(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ["replay", "--synthetic", "--synthetic-requests", "2", "--engine", "scripted"]
    assert cli([*args, "--replicas", "2", "--out", str(tmp_path)]) == 2
    assert "--replicas and --router simulate replicas on the twin" in capsys.readouterr().err


def test_an_unknown_router_policy_is_refused(
    profile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli(["replay", "--synthetic", "--engine", "twin", "--router", "fastest"])
    assert "router policies are" in capsys.readouterr().err
