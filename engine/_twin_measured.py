"""A measured cost profile of a running embedded engine: its settings, the probes, the fit.

``profile_engine`` is what ``agentrt engine profile`` runs: it reads the engine's vLLM
configuration (so the twin can reproduce it exactly), runs the probe grid, fits
``LinearStepCost`` and returns the profile ready to be written.

What it fits to decides how right the twin is under load. The probes' own timings are
client-side (gaps between streamed tokens, times to first token), and their shapes are
inferred; both include the front end's work and guess which steps vLLM built. The first
validation (docs/TWIN.md) fitted those and overestimated 7-way decode steps by 1.8x.
When the engine writes a step trace (``_step_trace``), every step the probes made is a
sample with its exact shape and its engine-side time, and the fit uses those instead.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from ._machine import machine_info
from ._step_trace import load_steps
from ._twin_fit import MeasuredStep, fit_steps
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


async def profile_engine(
    engine: VLLMEngine,
    grid: ProbeGrid | None = None,
    *,
    name: str = "measured",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    step_trace: Path | None = None,
) -> MeasuredProfile:
    """Measure ``engine`` over ``grid`` and fit its step-cost model.

    ``step_trace``: the file the engine appends its steps to (it was started with
    ``AGENTRT_STEP_TRACE`` naming it); the fit then uses the engine's own steps.

    Raises:
        ValueError: too few shapes fit the engine to fit the model, or a step trace
            that stayed empty (the engine does not run the tier scheduler).
    """
    model, defaults, limits = describe_vllm_engine(engine)
    await engine.reset_prefix_cache()
    skip = _trace_length(step_trace)
    steps = await measure(engine, limits, grid or ProbeGrid(), seed=seed, progress=progress)
    timing: Literal["engine_steps", "client_gaps"] = "client_gaps"
    if step_trace is not None:
        steps = [MeasuredStep(s.shape, s.busy_s) for s in load_steps(step_trace)[skip:]]
        if not steps:
            raise ValueError(f"the engine wrote no steps to {step_trace}")
        timing = "engine_steps"
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
        timing=timing,
        fit=FitQuality(
            samples=fit.samples, r2=fit.r2, median_abs_rel_error=fit.median_abs_rel_error
        ),
        samples=tuple(Sample(shape=s.shape.to_json(), seconds=s.seconds) for s in steps),
        machine=machine_info(),
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )


def _trace_length(path: Path | None) -> int:
    """Steps already in the trace (the warm-up's): the probes' steps come after them."""
    if path is None or not path.exists():
        return 0
    return len(load_steps(path))
