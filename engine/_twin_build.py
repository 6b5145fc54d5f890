"""From a cost profile and a few overrides to ``TwinOptions``: which model, which step costs,
and the scheduler and KV cache settings vLLM would run with.

A measured profile carries the profiled engine's settings, so by default its twin runs
exactly that engine's configuration; a roofline profile carries vLLM's defaults on its GPU
and the KV capacity follows from the GPU's memory, the weights and the KV bytes per token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ._tokenizer import ChatTokenizer
from ._twin import TwinOptions
from ._twin_core import TwinSettings
from ._twin_model import ModelSpec
from ._twin_profile import EngineDefaults, MeasuredProfile, RooflineProfile, load_profile
from ._twin_roofline import RooflineCost, kv_cache_blocks


@dataclass(frozen=True, slots=True)
class TwinOverrides:
    """Settings that replace the profile's (None: keep the profile's or vLLM's default).

    ``kv_cache_bytes`` sizes the cache directly (per GPU), like vLLM's
    ``kv_cache_memory_bytes``; ``num_blocks`` sets the block count itself; ``kv_scale``
    multiplies the cache the profile (or ``kv_cache_bytes``) gives, for "what if the
    cache were N times larger". ``live_ttl_s`` is the tier scheduler's (``TierSettings``).
    """

    model: str | Path | None = None
    tensor_parallel: int = 1
    block_size: int | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    long_prefill_token_threshold: int | None = None
    max_model_len: int | None = None
    kv_cache_bytes: int | None = None
    num_blocks: int | None = None
    gpu_memory_utilization: float | None = None
    kv_scale: float = 1.0
    cache_hints: bool = True
    live_ttl_s: float | None = None

    def __post_init__(self) -> None:
        if not self.kv_scale > 0:
            raise ValueError(f"kv_scale must be > 0, got {self.kv_scale}")


DEFAULT_WHATIF_MODEL = "qwen3-14b"


def twin_options(
    profile: str | Path | RooflineProfile | MeasuredProfile,
    overrides: TwinOverrides | None = None,
    *,
    tokenizer: ChatTokenizer | None = None,
) -> TwinOptions:
    """The twin a profile describes, with ``overrides`` applied.

    Raises:
        ProfileError, ModelConfigError: an unreadable profile or model config.
        ValueError: an override that does not fit the profile (tensor parallel on a
            measured profile) or a cache too small for one request.
    """
    prof = (
        profile if isinstance(profile, RooflineProfile | MeasuredProfile) else load_profile(profile)
    )
    o = overrides or TwinOverrides()
    if isinstance(prof, MeasuredProfile):
        return _measured(prof, o, tokenizer)
    return _roofline(prof, o, tokenizer)


def _settings(
    o: TwinOverrides, e: EngineDefaults, model: ModelSpec, *, block_size: int, num_blocks: int
) -> TwinSettings:
    """The profile's engine settings ``e`` with the overrides ``o`` applied."""
    budget = o.max_num_batched_tokens or e.max_num_batched_tokens
    # vLLM needs a budget of at least one token per sequence: a smaller budget given
    # alone caps the profile's default batch size with it.
    seqs = o.max_num_seqs or min(e.max_num_seqs, budget)
    threshold = o.long_prefill_token_threshold
    if threshold is None:
        threshold = e.long_prefill_token_threshold
    return TwinSettings(
        block_size=block_size,
        num_blocks=o.num_blocks or int(num_blocks * o.kv_scale),
        max_model_len=o.max_model_len or e.max_model_len or model.max_position_embeddings,
        max_num_seqs=seqs,
        max_num_batched_tokens=budget,
        long_prefill_token_threshold=threshold,
        scheduling_policy=e.scheduling_policy,
        cache_hints=o.cache_hints,
        **({} if o.live_ttl_s is None else {"live_ttl_s": o.live_ttl_s}),
    )


def _measured(
    prof: MeasuredProfile, o: TwinOverrides, tokenizer: ChatTokenizer | None
) -> TwinOptions:
    if o.tensor_parallel != 1:
        raise ValueError("tensor parallelism only applies to roofline (GPU what-if) profiles")
    if o.gpu_memory_utilization is not None:
        raise ValueError("--gpu-memory-utilization only applies to roofline profiles")
    model = ModelSpec.load(o.model or prof.model.folder, prof.model.dtype)
    e = prof.engine
    block = o.block_size or e.block_size
    blocks = e.num_blocks
    if o.kv_cache_bytes is not None or o.block_size is not None or blocks is None:
        budget = o.kv_cache_bytes or e.kv_cache_bytes
        if budget is None:
            raise ValueError(f"profile {prof.name!r} records neither KV blocks nor KV bytes")
        blocks = budget // (block * model.kv_bytes_per_token)
    settings = _settings(o, e, model, block_size=block, num_blocks=blocks)
    return TwinOptions(model, prof.cost(), settings, prof.model.dtype, tokenizer)


def _roofline(
    prof: RooflineProfile, o: TwinOverrides, tokenizer: ChatTokenizer | None
) -> TwinOptions:
    model = ModelSpec.load(o.model or DEFAULT_WHATIF_MODEL)
    cost = RooflineCost(model, prof.device_spec(), prof.roofline_settings(), o.tensor_parallel)
    e = prof.engine
    block = o.block_size or e.block_size
    if o.kv_cache_bytes is not None:
        blocks = int(o.kv_cache_bytes // (block * cost.kv_bytes_per_token_per_gpu))
    else:
        blocks = kv_cache_blocks(
            cost,
            block_size=block,
            gpu_memory_utilization=o.gpu_memory_utilization or prof.memory.gpu_memory_utilization,
            runtime_reserve_bytes=prof.memory.runtime_reserve_bytes,
        )
    settings = _settings(o, e, model, block_size=block, num_blocks=blocks)
    return TwinOptions(model, cost, settings, "bfloat16", tokenizer)
