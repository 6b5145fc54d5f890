"""Shared by the twin's tests: a model folder with only a config.json (no weights, no
tokenizer), which is all vLLM's scheduler needs."""

from __future__ import annotations

import json
from pathlib import Path


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
