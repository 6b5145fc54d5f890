"""``agentrt engine profile`` end to end: the command starts a real embedded engine, runs
its quick probe grid, fits the engine's own steps, and writes a profile that the other
twin commands read — ``agentrt engine check-trace`` prices the trace it kept, and
``agentrt replay --engine twin --profile`` replays a workload with it.

The unit tests cover the probes (``test_twin_probe``) and the fit (``test_twin_fit``) on
engines whose step times are known; this is the one test that the command, the engine's
step trace and the file format work together. Timings are wall-clock, so only what must
hold on any machine is asserted: the fit has positive coefficients and prices its own
steps to within a factor of two in total.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentrt.engine._step_trace import load_steps
from agentrt.engine._twin_profile import MeasuredProfile, load_profile

pytestmark = [pytest.mark.engine]

KV_MIB = 64
MAX_MODEL_LEN = 1024


def _agentrt(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "agentrt", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("profile") / "cpu.json"
    done = _agentrt(
        "engine", "profile", "--quick", "--out", str(out),
        "--kv-cache-mib", str(KV_MIB), "--max-model-len", str(MAX_MODEL_LEN),
        timeout=280,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| coefficient | value |" in done.stdout
    return out


def test_the_profile_fits_the_engines_own_steps(measured: Path) -> None:
    profile = load_profile(measured)
    assert isinstance(profile, MeasuredProfile)
    # Fitted to the engine core's step trace, not to client-side gaps.
    assert profile.timing == "engine_steps"
    steps = load_steps(measured.with_suffix(".steps.jsonl"))
    assert profile.fit.samples == len(profile.samples) > 0
    assert len(steps) >= profile.fit.samples  # warm-up steps come first and are not fitted
    # Both kinds of step were measured.
    assert any(s.shape.prefill_tokens for s in steps) and any(s.shape.num_decodes for s in steps)
    # The engine the twin will reproduce is the one that ran.
    assert profile.engine.max_model_len == MAX_MODEL_LEN
    assert profile.engine.kv_cache_bytes == KV_MIB * 2**20
    assert (profile.engine.num_blocks or 0) > 0
    assert profile.model.dtype in ("float32", "bfloat16", "float16")
    assert all(v >= 0 for v in profile.coefficients.values())
    assert any(v > 0 for v in profile.coefficients.values())
    assert profile.fit.r2 <= 1.0


def test_check_trace_prices_the_profiles_own_steps(measured: Path, tmp_path: Path) -> None:
    rows = tmp_path / "rows.json"
    done = _agentrt(
        "engine", "check-trace", str(measured.with_suffix(".steps.jsonl")),
        "--profile", str(measured), "--json", str(rows),
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| step kind |" in done.stdout
    total = json.loads(rows.read_text())["rows"][-1]
    assert total["steps"] > 0
    # A least-squares fit prices its own samples close to their total (wide margin:
    # the grid is tiny and the timings are wall-clock).
    assert 0.5 <= total["model_over_real"] <= 2.0


def test_the_twin_replays_a_workload_with_the_profile(measured: Path, tmp_path: Path) -> None:
    out = tmp_path / "replay"
    done = _agentrt(
        "replay", "--synthetic", "--synthetic-requests", "4", "--token-scale", "1/16",
        "--engine", "twin", "--profile", str(measured), "--rates", "1",
        "--modes", "baseline,all", "--no-plots", "--out", str(out),
        timeout=200,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert [r["mode"] for r in report["runs"]] == ["baseline", "all"]
    for run in report["runs"]:
        records = run["records"]
        assert len(records) == 4
        assert all(r["error"] is None and r["ftr_s"] > 0 for r in records)
