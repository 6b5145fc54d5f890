"""A measured cost profile of a running embedded engine: its settings, the probes, the fit.

``profile_engine`` is what ``agentrt engine profile`` runs: it reads the engine's vLLM
configuration (so the twin can reproduce it exactly), measures the probe grid, fits
``LinearStepCost`` and returns the profile ready to be written.
"""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Callable
from typing import Any

from ._twin_fit import fit_steps
from ._twin_probe import EngineLimits, ProbeGrid, measure
from ._twin_profile import EngineDefaults, FitQuality, MeasuredProfile, ModelRef, Sample
from ._vllm import VLLMEngine


def describe_vllm_engine(engine: VLLMEngine) -> tuple[ModelRef, EngineDefaults, EngineLimits]:
    """The model, the scheduler and KV cache settings, and the shape limits of ``engine``."""
    cfg = engine.async_llm.vllm_config
    sched, cache, model = cfg.scheduler_config, cfg.cache_config, cfg.model_config
    blocks = int(cache.num_gpu_blocks or 0)
    dtype = str(model.dtype).removeprefix("torch.")
    kv_bytes = cache.kv_cache_memory_bytes
    defaults = EngineDefaults(
        block_size=int(cache.block_size),
        max_num_batched_tokens=int(sched.max_num_batched_tokens),
        max_num_seqs=int(sched.max_num_seqs),
        long_prefill_token_threshold=int(sched.long_prefill_token_threshold),
        max_model_len=int(model.max_model_len),
        num_blocks=blocks,
        kv_cache_bytes=int(kv_bytes) if kv_bytes else None,
        scheduling_policy=str(sched.policy),  # type: ignore[arg-type]
    )
    limits = EngineLimits(
        block_size=defaults.block_size,
        capacity_tokens=(blocks - 1) * defaults.block_size,
        max_num_batched_tokens=defaults.max_num_batched_tokens,
        max_num_seqs=defaults.max_num_seqs,
        max_model_len=defaults.max_model_len or 0,
    )
    return ModelRef(folder=engine.info.model, dtype=dtype), defaults, limits


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
    }


async def profile_engine(
    engine: VLLMEngine,
    grid: ProbeGrid | None = None,
    *,
    name: str = "measured",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> MeasuredProfile:
    """Measure ``engine`` over ``grid`` and fit its step-cost model.

    Raises:
        ValueError: too few shapes fit the engine to fit the model.
    """
    model, defaults, limits = describe_vllm_engine(engine)
    await engine.reset_prefix_cache()
    steps = await measure(engine, limits, grid or ProbeGrid(), seed=seed, progress=progress)
    fit = fit_steps(steps)
    return MeasuredProfile(
        name=name,
        description=(
            f"Step times of vLLM running {model.folder} ({model.dtype}), measured by "
            "`agentrt engine profile` and fitted with non-negative least squares."
        ),
        model=model,
        engine=defaults,
        coefficients=fit.cost.as_dict(),
        fit=FitQuality(
            samples=fit.samples, r2=fit.r2, median_abs_rel_error=fit.median_abs_rel_error
        ),
        samples=tuple(Sample(shape=s.shape.to_json(), seconds=s.seconds) for s in steps),
        machine=machine(),
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
