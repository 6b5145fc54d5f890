"""The engine's step trace and pricing it with a cost model.

The trace is written by the tier scheduler itself, so the twin (which runs that very
scheduler class) shows exactly which steps it records: a wrong hook or a wrong shape
fails here without a model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scheduler_helpers import write_model_dir
from twin_helpers import tiny_profile_file

from agentrt.cli._main import main as cli_main
from agentrt.engine import ByteCodec, ChatTokenizer, GenerateRequest
from agentrt.engine._step_trace import TRACE_ENV, TracedStep, load_steps
from agentrt.engine._step_trace_check import check_trace, step_kind
from agentrt.engine._twin import TwinEngine, TwinOptions
from agentrt.engine._twin_core import TwinSettings
from agentrt.engine._twin_cost import Chunk, LinearStepCost, StepShape
from agentrt.engine._twin_model import ModelSpec
from agentrt.engine._vllm_args import EngineOptions, engine_arg_dict
from agentrt.testing import run_virtual

COST = LinearStepCost(step_s=0.01, prefill_token_s=0.001, decode_seq_s=0.002, new_request_s=0.005)


def test_the_tier_scheduler_traces_every_step_it_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = tmp_path / "steps.jsonl"
    monkeypatch.setenv(TRACE_ENV, str(trace))
    model = ModelSpec.load(write_model_dir(tmp_path, max_position_embeddings=4096))
    settings = TwinSettings(
        block_size=16, num_blocks=64, max_model_len=512, max_num_seqs=4, max_num_batched_tokens=64
    )

    async def main() -> None:
        engine = TwinEngine(
            TwinOptions(model, COST, settings, "float32", ChatTokenizer(ByteCodec()))
        )
        req = GenerateRequest(tuple(range(100, 200)), forced_output=(104, 105, 106))
        try:
            [_ async for _ in engine.generate(req)]
        finally:
            await engine.aclose()

    run_virtual(main)
    steps = load_steps(trace)
    # The 64-token budget splits the 100-token prompt; then one decode per further token.
    assert [s.shape for s in steps] == [
        StepShape((Chunk(64, 0),), (), 1),
        StepShape((Chunk(36, 64),), (), 0),
        StepShape((), (100,), 0),
        StepShape((), (101,), 0),
    ]
    assert all(s.t0 <= s.t1 <= s.t2 for s in steps)


def test_pricing_a_trace_groups_steps_by_kind() -> None:
    shapes = [
        StepShape((Chunk(64, 0),), (), 1),
        StepShape((), (100,), 0),
        StepShape((), (100, 50, 20), 0),
        StepShape((Chunk(8, 32),), (100, 50), 0),
    ]
    # Real steps take exactly the cost model's time, except decodes take twice as long.
    steps = []
    for i, s in enumerate(shapes):
        real = COST.step_time(s) * (2.0 if s.decodes and not s.prefills else 1.0)
        steps.append(TracedStep(s, float(i), float(i), float(i) + real))
    check = check_trace(steps, COST)
    rows = {r.kind: r for r in check.rows}
    assert list(rows) == ["decode x1", "decode x3-4", "mixed x2", "prefill"]
    assert rows["prefill"].ratio == pytest.approx(1.0)
    assert rows["mixed x2"].ratio == pytest.approx(1.0)
    assert rows["decode x1"].ratio == pytest.approx(0.5)
    assert check.total.steps == 4
    assert "| decode x3-4 | 1 |" in check.table()
    assert [step_kind(StepShape((), (1,) * n)) for n in (5, 16, 17)] == [
        "decode x5-8",
        "decode x9-16",
        "decode x17+",
    ]


def test_a_line_that_is_not_a_step_is_named(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    line = {"t0": 0, "t1": 0, "t2": 1, "shape": {"decodes": [3]}}
    trace.write_text(json.dumps(line) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"t\.jsonl:2"):
        load_steps(trace)


def test_check_trace_command_prices_a_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = tiny_profile_file(tmp_path)
    trace = tmp_path / "t.jsonl"
    # The tiny profile: 5 ms a step, 1 ms per decoding sequence, 1 us per context token.
    line = {"t0": 0.0, "t1": 0.0, "t2": 0.012, "shape": {"decodes": [1000]}}
    trace.write_text(json.dumps(line) + "\n")
    out = tmp_path / "check.json"
    argv = ["engine", "check-trace", str(trace), "--profile", str(profile), "--json", str(out)]
    assert cli_main(argv) == 0
    assert "| decode x1 | 1 | 12.0 | 7.0 |" in capsys.readouterr().out
    rows = json.loads(out.read_text())["rows"]
    assert rows[-1]["kind"] == "all" and rows[-1]["model_over_real"] == pytest.approx(7 / 12)
    assert cli_main(["engine", "check-trace", str(tmp_path / "none"), "--profile", str(profile)])


def test_a_traced_engine_without_hints_runs_the_tier_scheduler_as_lru(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = EngineOptions(cache_hints=False)
    assert "scheduler_cls" not in engine_arg_dict(opts, tmp_path)
    monkeypatch.setenv(TRACE_ENV, str(tmp_path / "t.jsonl"))
    args = engine_arg_dict(opts, tmp_path)
    assert args["scheduler_cls"].endswith("TierScheduler")
    assert args["additional_config"]["agentrt"]["use_tiers"] is False
