"""Shared by the twin's tests: a measured profile of a model folder holding only a
config.json (``scheduler_helpers.write_model_dir``: no weights, no tokenizer, which is
all vLLM's scheduler needs)."""

from __future__ import annotations

from pathlib import Path

from agentrt.engine._twin_cost import LinearStepCost
from agentrt.engine._twin_profile import EngineDefaults, FitQuality, MeasuredProfile, ModelRef


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
