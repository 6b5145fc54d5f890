"""Shared by the twin's tests: a model folder with only a config.json (no weights, no
tokenizer), which is all vLLM's scheduler needs, and a measured profile of it."""

from __future__ import annotations

import json
from pathlib import Path

from agentrt.engine._twin_cost import LinearStepCost
from agentrt.engine._twin_profile import EngineDefaults, FitQuality, MeasuredProfile, ModelRef


def write_tiny_model(folder: Path, *, max_position_embeddings: int = 4096) -> Path:
    """A two-layer Llama config in ``folder``; returns ``folder``."""
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        "vocab_size": 1000,
        "max_position_embeddings": max_position_embeddings,
        "torch_dtype": "float32",
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def measured_profile(folder: Path, cost: LinearStepCost, **engine: int) -> MeasuredProfile:
    """A measured profile of the model in ``folder``: ``cost``, and ``engine`` settings
    (``block_size``, ``max_num_batched_tokens``, ``max_num_seqs``, ``max_model_len``,
    ``num_blocks``)."""
    return MeasuredProfile(
        name=folder.name,
        model=ModelRef(folder=str(folder), dtype="float32"),
        engine=EngineDefaults(**engine),
        coefficients=cost.as_dict(),
        fit=FitQuality(samples=10, r2=1.0, median_abs_rel_error=0.0),
    )
