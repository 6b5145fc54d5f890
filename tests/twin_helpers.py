"""Shared by the twin's tests: a measured profile of a model folder holding only a
config.json (``scheduler_helpers.write_model_dir``: no weights, no tokenizer, which is
all vLLM's scheduler needs)."""

from __future__ import annotations

from pathlib import Path

from scheduler_helpers import write_model_dir

from agentrt.engine._twin_cost import LinearStepCost
from agentrt.engine._twin_profile import (
    EngineDefaults,
    FitQuality,
    MeasuredProfile,
    ModelRef,
    dump_profile,
)


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


def tiny_profile_file(folder: Path) -> Path:
    """A measured profile of a config-only llama in ``folder`` (16-token blocks, 400 of
    them, a 256-token budget), written to ``folder/profile.json``."""
    model = write_model_dir(folder, max_position_embeddings=4096)
    cost = LinearStepCost(0.005, 0.0002, 0.0, 0.001, 1e-6, 0.002)
    prof = measured_profile(
        model,
        cost,
        block_size=16,
        max_num_batched_tokens=256,
        max_num_seqs=16,
        max_model_len=4096,
        num_blocks=400,
    )
    path = model / "profile.json"
    dump_profile(prof, path)
    return path
