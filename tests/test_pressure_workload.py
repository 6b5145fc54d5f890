"""The cache-pressure workload on the twin: LRU loses the waiting agents' context, the
tiers keep it (model-free: vLLM's scheduler and KV cache, no weights)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from scheduler_helpers import write_model_dir

import agentrt._turn as turn_module
from agentrt.engine import CacheHint, ChatTokenizer, default_model_dir
from agentrt.engine._twin_build import twin_options
from agentrt.replay.report._summary import RunSummary
from agentrt.replay.run._driver import replay_all
from agentrt.replay.run._plan import build_plan
from agentrt.replay.run._pressure_twin import pressure_profile
from agentrt.replay.run._sources import PoissonLoad, mode_switches
from agentrt.replay.run._twin_source import TwinSource
from agentrt.replay.trace._pressure import PRESSURE_ENGINE, PRESSURE_RATE, pressure_trace
from agentrt.testing import run_virtual

pytestmark = pytest.mark.timeout(300)


def _tokenizer() -> ChatTokenizer:
    """The default model's tokenizer (the real engine's prompt lengths), no model needed."""
    folder = default_model_dir()
    if not (folder / "tokenizer.json").is_file():
        pytest.skip("the default model's tokenizer is not prepared (scripts/setup.sh)")
    return ChatTokenizer.from_folder(folder)


def _replay(folder: Path, modes: Sequence[str], seed: int = 0) -> dict[str, RunSummary]:
    options = twin_options(pressure_profile(folder), tokenizer=_tokenizer())
    source = TwinSource(options)
    plan = build_plan(pressure_trace(seed), source.tokenizer, seed=seed, tool_factor=1.0)

    async def go() -> dict[str, RunSummary]:
        runs = await replay_all(
            plan, [mode_switches(m) for m in modes], [PoissonLoad(PRESSURE_RATE, seed)], source
        )
        return {r.mode: r.summary for r in runs}

    return run_virtual(go)


def _ratio(s: RunSummary) -> float:
    assert s.n_failed == 0, f"{s.mode}: {s.n_failed} requests failed"
    assert s.hit_rate is not None and s.max_hit_rate, f"{s.mode}: no hit rate"
    return s.hit_rate / s.max_hit_rate


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(
        tmp_path_factory.mktemp("pressure-model"),
        max_position_embeddings=PRESSURE_ENGINE.max_model_len,
    )


@pytest.fixture(scope="module")
def runs(model: Path) -> dict[str, RunSummary]:
    return _replay(model, ("baseline", "cache_hints"))


def test_the_twin_runs_the_pressure_engine(model: Path) -> None:
    s = twin_options(pressure_profile(model)).settings
    e = PRESSURE_ENGINE
    assert (s.block_size, s.num_blocks, s.max_num_seqs) == (e.block_size, e.num_blocks, 4)


def test_lru_keeps_under_0_8_of_the_theoretical_maximum(runs: dict[str, RunSummary]) -> None:
    assert _ratio(runs["baseline"]) < 0.8


def test_cache_hints_keep_0_95_of_the_theoretical_maximum(runs: dict[str, RunSummary]) -> None:
    assert _ratio(runs["cache_hints"]) >= 0.95


def test_both_modes_replay_the_same_prompts(runs: dict[str, RunSummary]) -> None:
    base, hinted = runs["baseline"], runs["cache_hints"]
    assert base.max_hit_rate == pytest.approx(hinted.max_hit_rate, abs=0.005)
    assert base.diverged_calls == hinted.diverged_calls == 0


def test_prompt_tiers_alone_lose_more_than_the_call_policy(
    model: Path, runs: dict[str, RunSummary], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``call_hints`` (responses unlabelled, final calls keep their prompt tiers)
    the tiers keep less: the policy is what reaches the maximum."""

    def prompt_only(
        hints: Sequence[CacheHint], prompt_tokens: int, max_tokens: int, *, final: bool
    ) -> tuple[CacheHint, ...]:
        return tuple(hints)

    monkeypatch.setattr(turn_module, "call_hints", prompt_only)
    plain = _replay(model, ("cache_hints",))["cache_hints"]
    assert _ratio(plain) < _ratio(runs["cache_hints"])


def test_the_trace_interleaves_agents_and_one_shots() -> None:
    trace = pressure_trace(0)
    ids = [r.id for r in trace.requests]
    assert ids[:3] == ["agent-0000", "oneshot-0000", "oneshot-0001"]
    assert len(ids) == 30 and len(set(ids)) == 30
    agents = [r for r in trace.requests if r.id.startswith("agent-")]
    assert all(len(r.calls) == 2 and r.calls[0].tool_calls for r in agents)
    assert pressure_trace(0) == trace and pressure_trace(1) != trace


@pytest.mark.parametrize("bf16", [True, False], ids=["bf16-cpu", "fp32-cpu"])
def test_the_embedded_engine_gets_the_pressure_blocks_on_either_cpu(
    bf16: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The workload is sized in blocks; a cache sized in bytes would hold twice the tokens
    # on a CPU that runs the model in bf16, and the pressure would be gone.
    from agentrt.engine import _vllm_args

    config = default_model_dir() / "config.json"
    if not config.is_file():
        pytest.skip("the default model is not prepared (scripts/setup.sh)")
    c = json.loads(config.read_text())
    head_dim = c["hidden_size"] // c["num_attention_heads"]
    values = c["num_hidden_layers"] * 2 * c["num_key_value_heads"] * head_dim
    monkeypatch.setattr(_vllm_args, "cpu_has_native_bf16", lambda: bf16)
    monkeypatch.setattr(_vllm_args, "_on_cpu", lambda: True)
    e = PRESSURE_ENGINE
    assert e.kv_cache_bytes() == e.num_blocks * e.block_size * values * (2 if bf16 else 4)
