"""The embedded engine's options, and their translation (and of requests) into vLLM's
engine args and SamplingParams.

Kept apart from the engine class so the HTTP server entry point and the benchmarks
build vLLM exactly the same way. Imports vLLM only inside the functions.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._machine import cpu_has_native_bf16
from ._step_trace import TRACE_ENV
from ._tier_wire import (
    ASYNC_TIER_SCHEDULER,
    CONFIG_KEY,
    TIER_SCHEDULER,
    TierSettings,
    encode_payload,
)
from ._types import GenerateRequest, SessionId, TokenLogprob

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs

FORCED_PROCESSOR = "agentrt.engine._forced:ForcedOutputProcessor"


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """How to start the embedded engine. Defaults suit a small CPU machine.

    Attributes:
        model: a local Hugging Face model folder, or None for the default model.
        max_model_len: context length in tokens.
        kv_cache_bytes: memory for the KV cache (on CPU this sets the cache size).
        block_size: tokens per KV block (None: vLLM's default, 128 on CPU, 16 on GPU).
        enforce_eager: skip torch.compile (starts in ~20 s instead of ~60 s on CPU).
        dtype: "auto" picks float32 on CPUs without native bf16, else the model's dtype.
        cache_hints: use the tier-aware scheduler (False: vLLM's plain LRU, the baseline).
        max_num_seqs: concurrent sequences per step (None: vLLM's default).
        jump_forward: prefill the fixed head of a forced tool call instead of decoding it
            (``engine._jump_forward``; False: decode every output token).
        live_ttl_s: the tier scheduler's ``TierSettings.live_ttl_s`` (None: its default).
        extra: further ``AsyncEngineArgs`` fields, passed through unchanged.
    """

    model: str | None = None
    max_model_len: int = 4096
    kv_cache_bytes: int = 512 * 2**20
    block_size: int | None = None
    enforce_eager: bool = True
    dtype: str = "auto"
    cache_hints: bool = True
    max_num_seqs: int | None = None
    seed: int = 0
    jump_forward: bool = True
    live_ttl_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _on_cpu() -> bool:
    try:
        import torch

        return not torch.cuda.is_available()
    except ImportError:
        return True


def resolve_dtype(dtype: str) -> str:
    if dtype != "auto":
        return dtype
    if _on_cpu() and not cpu_has_native_bf16():
        return "float32"
    return "auto"


def kv_bytes_per_value(dtype: str = "auto") -> int:
    """Bytes of one cached K or V value when the engine runs in ``dtype``.

    "auto" is what :func:`resolve_dtype` picks on this machine: float32 (4 bytes) on a
    CPU without native bf16, else the model's own dtype, which for the default model is
    bf16 (2 bytes). A cache sized in bytes therefore holds twice the tokens on a bf16
    CPU; size it with this to keep the same number of blocks everywhere.
    """
    resolved = resolve_dtype(dtype)
    return 4 if resolved in ("float32", "float", "fp32") else 2


def engine_arg_dict(opts: EngineOptions, folder: Path) -> dict[str, Any]:
    """The ``AsyncEngineArgs`` fields for ``opts`` (also turned into server flags)."""
    args: dict[str, Any] = {
        "model": str(folder),
        "tokenizer": str(folder),
        "max_model_len": opts.max_model_len,
        "enforce_eager": opts.enforce_eager,
        "dtype": resolve_dtype(opts.dtype),
        "enable_prefix_caching": True,
        # Program-level priority: an agent run that arrived earlier is served first.
        "scheduling_policy": "priority",
        "seed": opts.seed,
        "logits_processors": [FORCED_PROCESSOR],
    }
    if _on_cpu():
        args["kv_cache_memory_bytes"] = opts.kv_cache_bytes
        # One CPU worker: run it inside the engine-core process. A separate worker process
        # would make the engine core spin-wait on it, taking a core from the model.
        args["distributed_executor_backend"] = "uni"
    if opts.block_size is not None:
        args["block_size"] = opts.block_size
    if opts.max_num_seqs is not None:
        args["max_num_seqs"] = opts.max_num_seqs
    traced = bool(os.environ.get(TRACE_ENV))
    if opts.cache_hints or traced:
        # vLLM turns async scheduling off on CPU; on GPU it is on and needs the async variant.
        args["scheduler_cls"] = TIER_SCHEDULER if _on_cpu() else ASYNC_TIER_SCHEDULER
    if opts.cache_hints and opts.live_ttl_s is not None:
        settings = TierSettings(live_ttl_s=opts.live_ttl_s)
        args["additional_config"] = {CONFIG_KEY: settings.to_config()}
    if traced and not opts.cache_hints:
        # Only the tier scheduler writes a step trace; with tiers off it evicts in exactly
        # vLLM's LRU order, so a traced engine without hints behaves as vLLM's own.
        args["additional_config"] = {CONFIG_KEY: TierSettings(use_tiers=False).to_config()}
    args.update(opts.extra)
    return args


def cpu_env() -> dict[str, str]:
    """Environment for the engine-core process on CPU: the model's OpenMP threads may use
    every core (vLLM's default keeps one back, which halves prefill on a 2-core machine).
    Values the user already set win."""
    if not _on_cpu():
        return {}
    return {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


def build_engine_args(opts: EngineOptions, folder: Path) -> AsyncEngineArgs:
    from vllm.engine.arg_utils import AsyncEngineArgs

    return AsyncEngineArgs(**engine_arg_dict(opts, folder))


def agentrt_extra_args(
    request: GenerateRequest, release: Sequence[SessionId], *, hints: bool, flat: bool = False
) -> dict[str, Any]:
    """What rides in ``SamplingParams.extra_args`` (``flat``: in ``vllm_xargs`` over HTTP,
    which only takes flat values)."""
    extra: dict[str, Any] = {}
    if request.forced_output is not None:
        extra["agentrt_forced"] = list(request.forced_output)
    if hints and (request.hints or request.session or release):
        extra.update(encode_payload(request.hints, request.session, release, as_xargs=flat))
    return extra


def sampling_params(
    request: GenerateRequest,
    release: Sequence[SessionId],
    max_tokens: int,
    *,
    structured: dict[str, Any] | None,
    hints: bool,
) -> SamplingParams:
    """vLLM sampling parameters for one request (streamed as deltas).

    ``max_tokens`` is the request's output budget (``EngineBase._max_output_tokens``).
    """
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

    s = request.sampling
    extra = agentrt_extra_args(request, release, hints=hints)
    forced = request.forced_output is not None
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=s.temperature,
        top_p=s.top_p,
        top_k=s.top_k,
        min_p=s.min_p,
        presence_penalty=s.presence_penalty,
        frequency_penalty=s.frequency_penalty,
        repetition_penalty=s.repetition_penalty,
        logit_bias=dict(s.logit_bias) or None,
        logprobs=s.logprobs,
        seed=s.seed,
        stop=list(s.stop) or None,
        # The forced-output processor picks every token; an EOS inside must not stop it.
        ignore_eos=s.ignore_eos or forced,
        output_kind=RequestOutputKind.DELTA,
        structured_outputs=StructuredOutputsParams(**structured) if structured else None,
        extra_args=extra or None,
        stop_token_ids=[] if forced else list(s.stop_token_ids) or None,
    )


def token_logprobs(
    ids: Sequence[int], logprobs: Sequence[Mapping[int, Any] | None] | None, top: int | None
) -> tuple[TokenLogprob, ...] | None:
    """Our form of vLLM's per-token logprob dicts (token id -> ``Logprob``, holding the
    sampled token and the ``top`` best by rank); None when none were asked for."""
    if top is None or logprobs is None:
        return None
    out = []
    for tid, maybe in zip(ids, logprobs, strict=False):
        entry = maybe or {}
        ranked = sorted(
            ((t, lp) for t, lp in entry.items() if lp.rank is not None and lp.rank <= top),
            key=lambda item: item[1].rank,
        )
        chosen = entry.get(tid)
        out.append(
            TokenLogprob(
                tid,
                _finite(chosen.logprob) if chosen is not None else _NEG_INF,
                tuple((t, _finite(lp.logprob)) for t, lp in ranked[:top]),
            )
        )
    return tuple(out)


_NEG_INF = -9999.0
"""What an impossible token's log-probability is reported as (JSON has no -inf)."""


def _finite(x: float) -> float:
    return x if math.isfinite(x) else _NEG_INF
