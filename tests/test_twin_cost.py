"""The twin's cost models, model configs and profile files (no vLLM, no model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agentrt.engine._twin_cost import FEATURES, Chunk, LinearStepCost, StepShape
from agentrt.engine._twin_fit import MeasuredStep, fit_steps, nnls
from agentrt.engine._twin_model import ModelConfigError, ModelSpec, bundled_models
from agentrt.engine._twin_profile import (
    ProfileError,
    RooflineProfile,
    bundled_profiles,
    load_profile,
    parse_profile,
)
from agentrt.engine._twin_roofline import RooflineCost, kv_cache_blocks


def test_bundled_models_have_their_published_sizes() -> None:
    assert bundled_models() == ["llama-3.1-8b", "qwen3-14b"]
    qwen, llama = ModelSpec.load("qwen3-14b"), ModelSpec.load("llama-3.1-8b")
    # Published totals: Qwen3-14B 14.8B (13.2B without embeddings), Llama 3.1 8B 8.03B.
    assert round(qwen.total_params / 1e9, 1) == 14.8
    assert round(qwen.layer_params / 1e9, 1) == 13.2
    assert round(llama.total_params / 1e9, 2) == 8.03
    # K and V, every layer, bf16: 2 * 40 * 8 * 128 * 2 and 2 * 32 * 8 * 128 * 2.
    assert qwen.kv_bytes_per_token == 163_840
    assert llama.kv_bytes_per_token == 131_072


def test_model_config_errors_name_the_field(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 64}))
    with pytest.raises(ModelConfigError, match="num_attention_heads"):
        ModelSpec.load(tmp_path)
    moe = {"num_attention_heads": 4, "hidden_size": 64, "num_experts": 8}
    with pytest.raises(ModelConfigError, match="mixture-of-experts"):
        ModelSpec.from_config(moe, "moe")
    with pytest.raises(ModelConfigError, match="neither a bundled model"):
        ModelSpec.load(tmp_path / "missing")


def test_attention_pairs_count_causal_attention() -> None:
    assert Chunk(2, 3).attention_pairs == 9  # (3 + 1) + (3 + 2)
    assert Chunk(1, 0).attention_pairs == 1
    shape = StepShape((Chunk(4, 0), Chunk(2, 3)), (10, 20), 1)
    assert (shape.prefill_tokens, shape.tokens, shape.sequences) == (6, 8, 4)
    assert shape.decode_context == 30
    assert StepShape.from_json(shape.to_json()) == shape


def test_linear_cost_is_its_formula_and_empty_steps_are_free() -> None:
    cost = LinearStepCost(0.01, 0.001, 0.002, 0.003, 1e-5, 0.004)
    shape = StepShape((Chunk(100, 50),), (200, 300), 1)
    pairs = 100 * 50 + 100 * 101 // 2
    expected = 0.01 + 0.001 * 100 + 0.002 * pairs / 1000 + 0.003 * 2 + 1e-5 * 500 + 0.004
    assert cost.step_time(shape) == pytest.approx(expected)
    assert cost.step_time(StepShape()) == 0.0
    with pytest.raises(ValueError, match="decode_seq_s"):
        LinearStepCost(decode_seq_s=-1.0)


def test_nnls_keeps_coefficients_non_negative_and_optimal() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = rng.normal(size=(20, 4)), rng.normal(size=20)
        x = nnls(a, b)
        gradient = a.T @ (b - a @ x)
        assert (x >= 0).all()
        # Karush-Kuhn-Tucker: no descent direction is left inside the feasible set.
        assert (gradient <= 1e-8).all()
        assert np.allclose(gradient[x > 1e-9], 0, atol=1e-8)


def test_fit_recovers_a_known_cost_model() -> None:
    truth = LinearStepCost(0.004, 0.0009, 0.00002, 0.002, 1e-6, 0.003)
    shapes = [StepShape((Chunk(p, c),), (), 1) for p in (32, 256, 1024) for c in (0, 512)]
    shapes += [StepShape((), (c,) * d, 0) for d in (1, 4, 16) for c in (64, 1024)]
    shapes += [StepShape((Chunk(256, 0),), (512,) * 4, 1)]
    fit = fit_steps([MeasuredStep(s, truth.step_time(s)) for s in shapes])
    assert fit.r2 == pytest.approx(1.0)
    assert fit.median_abs_rel_error < 1e-6
    for name in FEATURES:
        assert getattr(fit.cost, name) == pytest.approx(getattr(truth, name), rel=1e-4, abs=1e-9)
    with pytest.raises(ValueError, match="at least 6"):
        fit_steps([MeasuredStep(shapes[0], 0.1)])


def _a100_qwen(tp: int = 1) -> RooflineCost:
    prof = load_profile("a100-80gb")
    assert isinstance(prof, RooflineProfile)
    return RooflineCost(
        ModelSpec.load("qwen3-14b"), prof.device_spec(), prof.roofline_settings(), tp
    )


def test_roofline_decode_is_memory_bound_and_prefill_compute_bound() -> None:
    cost = _a100_qwen()
    m, d, s = cost.model, cost.device, cost.settings
    one = StepShape((), (1000,), 0)
    weights = (m.layer_params + m.lm_head_params) * m.dtype_bytes
    kv = (1000 + 1) * m.kv_bytes_per_token
    memory_s = (weights + kv) / (d.memory_bandwidth * s.memory_fraction)
    assert cost.step_time(one) == pytest.approx(memory_s + s.step_overhead_s)
    big = StepShape((Chunk(2048, 0),), (), 1)
    work = cost.work(big)
    assert cost.step_time(big) == pytest.approx(
        work.flops / (d.peak_flops * s.compute_fraction) + s.step_overhead_s
    )
    # A decode step of 32 costs far less than 32 single decodes (weights read once).
    assert cost.step_time(StepShape((), (1000,) * 32, 0)) < 2 * cost.step_time(one)


def test_tensor_parallel_splits_work_and_adds_all_reduces() -> None:
    one, eight = _a100_qwen(1), _a100_qwen(8)
    shape = StepShape((Chunk(256, 0),), (1000,) * 8, 1)
    w1, w8 = one.work(shape), eight.work(shape)
    assert w8.flops == pytest.approx(w1.flops / 8)
    assert w1.comm_s == 0 and w8.comm_s > 0
    assert eight.step_time(shape) < one.step_time(shape)


def test_kv_capacity_follows_memory_weights_and_kv_bytes() -> None:
    cost = _a100_qwen()
    blocks = kv_cache_blocks(
        cost, block_size=16, gpu_memory_utilization=0.9, runtime_reserve_bytes=2 * 2**30
    )
    free = 0.9 * 80 * 2**30 - cost.model.weight_bytes - 2 * 2**30
    assert blocks == int(free // (16 * 163_840))
    eight = kv_cache_blocks(
        _a100_qwen(8), block_size=16, gpu_memory_utilization=0.9, runtime_reserve_bytes=2 * 2**30
    )
    assert eight > 8 * blocks  # weights split 8 ways leave more room on each GPU
    with pytest.raises(ValueError, match="leaves no KV cache"):
        kv_cache_blocks(cost, block_size=16, gpu_memory_utilization=0.3, runtime_reserve_bytes=0)


def test_bundled_profiles_cite_a_source_for_every_constant() -> None:
    assert bundled_profiles() == ["a100-40gb", "a100-80gb", "h100-80gb"]
    for name in bundled_profiles():
        prof = load_profile(name)
        assert isinstance(prof, RooflineProfile)
        data = prof.model_dump()
        constants = [f"device.{k}" for k in data["device"] if k != "name"]
        constants += [f"roofline.{k}" for k in data["roofline"]]
        constants += [f"memory.{k}" for k in data["memory"]]
        constants += ["engine.block_size", "engine.max_num_batched_tokens", "engine.max_num_seqs"]
        assert sorted(prof.sources) == sorted(constants)


def test_profile_errors_name_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="neither a bundled profile"):
        load_profile(tmp_path / "nope.json")
    bad = json.loads(json.dumps(load_profile("a100-80gb").model_dump(mode="json", by_alias=True)))
    bad["roofline"]["memory_fraction"] = 1.5
    with pytest.raises(ProfileError, match=r"roofline\.memory_fraction"):
        parse_profile(bad, "bad.json")
    path = tmp_path / "broken.json"
    path.write_text("{")
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile(path)
