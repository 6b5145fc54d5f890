"""Command-line flags for engine options, shared by every command that starts an engine."""

from __future__ import annotations

import argparse

from agentrt.engine import EngineOptions

LIVE_TTL_HELP = (
    "seconds a waiting run's freed context is evicted newest first before it counts as "
    "stale (0: LRU within every tier; default 120)"
)


def add_engine_flags(
    p: argparse.ArgumentParser, *, kv_cache_mib: int = 512, max_model_len: int = 4096
) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--model", default=None, help="local model folder (default: the default model)")
    g.add_argument(
        "--max-model-len", type=int, default=max_model_len, help="context length in tokens"
    )
    g.add_argument("--kv-cache-mib", type=int, default=kv_cache_mib, help="KV cache memory (MiB)")
    g.add_argument(
        "--block-size", type=int, default=None, help="tokens per KV block (vLLM default)"
    )
    g.add_argument("--compiled", action="store_true", help="use torch.compile (slower start)")
    g.add_argument(
        "--dtype", default="auto", help="model dtype (auto: float32 on CPUs without bf16)"
    )
    g.add_argument("--no-hints", action="store_true", help="plain vLLM scheduler (LRU, no tiers)")
    g.add_argument("--max-num-seqs", type=int, default=None, help="concurrent sequences per step")
    g.add_argument("--live-ttl-s", type=float, default=None, help=LIVE_TTL_HELP)
    g.add_argument(
        "--no-jump-forward",
        action="store_true",
        help="decode the fixed head of a forced tool call instead of prefilling it",
    )
    g.add_argument(
        "--tensor-parallel-size", type=_size, default=1, help="GPUs that split each layer (vLLM's)"
    )
    g.add_argument(
        "--pipeline-parallel-size", type=_size, default=1, help="stages the layers are cut into"
    )


def engine_options(args: argparse.Namespace) -> EngineOptions:
    return EngineOptions(
        model=args.model,
        max_model_len=args.max_model_len,
        kv_cache_bytes=args.kv_cache_mib * 2**20,
        block_size=args.block_size,
        enforce_eager=not args.compiled,
        dtype=args.dtype,
        cache_hints=not args.no_hints,
        max_num_seqs=args.max_num_seqs,
        jump_forward=not args.no_jump_forward,
        live_ttl_s=args.live_ttl_s,
        extra=_parallel(args),
    )


def _parallel(args: argparse.Namespace) -> dict[str, int]:
    """vLLM's parallelism fields, only when asked for (a CPU engine runs one worker)."""
    names = ("tensor_parallel_size", "pipeline_parallel_size")
    return {name: getattr(args, name) for name in names if getattr(args, name) > 1}


def _size(text: str) -> int:
    size = int(text)
    if size < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {size}")
    return size
