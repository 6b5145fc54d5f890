"""``agentrt replay --engine twin``: the twin's options and the engine source they name.

The twin (``agentrt.engine`` ``TwinEngine``) runs vLLM's own scheduler and KV cache with
step times from a cost profile; every figure it produces is simulated.
"""

from __future__ import annotations

import argparse

from agentrt.engine import ByteCodec, ChatTokenizer, default_model_dir
from agentrt.engine._twin_build import TwinOverrides, twin_options
from agentrt.engine._twin_profile import MeasuredProfile, load_profile
from agentrt.engine._twin_router import ROUTER_POLICIES
from agentrt.replay.run._twin_source import TwinSource

DEFAULT_COMPARISON = ("round_robin", "cache_aware", "session_affine")
"""What ``--replicas N`` compares when no ``--router`` is given."""


def add_twin_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``--engine twin`` (``--block-size``, ``--max-num-seqs`` and
    ``--max-model-len`` of the engine group apply too)."""
    g = parser.add_argument_group("twin engine (--engine twin; every figure is simulated)")
    g.add_argument(
        "--profile",
        default="a100-80gb",
        help="cost profile: a100-80gb, a100-40gb, h100-80gb (GPU roofline) or a file written by "
        "`agentrt engine profile`",
    )
    g.add_argument(
        "--twin-model",
        default=None,
        help="roofline profiles: qwen3-14b, llama-3.1-8b or a folder with a config.json "
        "(default qwen3-14b); measured profiles use the profiled model",
    )
    g.add_argument("--tensor-parallel", type=int, default=1, help="roofline: GPUs per engine")
    g.add_argument(
        "--max-num-batched-tokens", type=int, default=None, help="token budget per step (chunk)"
    )
    g.add_argument(
        "--long-prefill-threshold", type=int, default=None, help="cap per prompt per step"
    )
    g.add_argument(
        "--gpu-memory-utilization", type=float, default=None, help="roofline: vLLM's default 0.9"
    )
    g.add_argument("--kv-blocks", type=int, default=None, help="KV blocks (overrides memory)")
    g.add_argument(
        "--kv-scale", type=float, default=1.0, help="multiply the profile's KV cache by this"
    )
    g.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="simulate N replicas behind a model of vllm-router (with --router)",
    )
    g.add_argument(
        "--router",
        type=_policies,
        default=None,
        help=f"router policy, or several comma-separated to compare side by side (one "
        f"report each, and routers.md/json/png): {', '.join(ROUTER_POLICIES)} "
        "(default with --replicas > 1: round_robin,cache_aware,session_affine)",
    )
    g.add_argument(
        "--twin-tokenizer",
        default=None,
        help="a folder with tokenizer.json, or 'bytes' (fastest; chat-template text counts "
        "a token per byte) (default: the measured model's, else the default model's)",
    )


def _policies(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    bad = [n for n in names if n not in ROUTER_POLICIES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: router policies are {', '.join(ROUTER_POLICIES)}"
        )
    return list(dict.fromkeys(names))


def check_replica_arguments(args: argparse.Namespace) -> None:
    """Fill ``--router``'s default for ``--replicas`` > 1; refuse replica options off the
    twin.

    Raises:
        ValueError: naming the bad option.
    """
    if args.replicas < 1:
        raise ValueError(f"--replicas must be at least 1, got {args.replicas}")
    if args.engine != "twin":
        if args.replicas != 1 or args.router:
            raise ValueError(
                "--replicas and --router simulate replicas on the twin (--engine twin); "
                "real replicas run behind vllm-router: see `agentrt engine cluster`"
            )
        return
    if args.replicas > 1 and not args.router:
        args.router = list(DEFAULT_COMPARISON)


def _tokenizer(args: argparse.Namespace, measured: bool) -> ChatTokenizer | None:
    if args.twin_tokenizer == "bytes":
        return ChatTokenizer(ByteCodec())
    if args.twin_tokenizer:
        return ChatTokenizer.from_folder(args.twin_tokenizer)
    if measured:
        return None  # the profiled model's own
    folder = default_model_dir()
    if (folder / "tokenizer.json").is_file():
        return ChatTokenizer.from_folder(folder)
    return ChatTokenizer(ByteCodec())


def twin_source(args: argparse.Namespace, router: str | None = None) -> TwinSource:
    """The engine source ``--engine twin`` and its options name (``router``: the policy
    in front of ``--replicas`` twins; None: one twin).

    Raises:
        ValueError: a bad profile, model or setting (the message names it).
    """
    profile = load_profile(args.profile)
    measured = isinstance(profile, MeasuredProfile)
    overrides = TwinOverrides(
        model=args.twin_model,
        tensor_parallel=args.tensor_parallel,
        block_size=args.block_size,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        long_prefill_token_threshold=args.long_prefill_threshold,
        max_model_len=args.max_model_len,
        num_blocks=args.kv_blocks,
        kv_cache_bytes=args.kv_cache_bytes,
        gpu_memory_utilization=args.gpu_memory_utilization,
        kv_scale=args.kv_scale,
        live_ttl_s=args.live_ttl_s,
    )
    options = twin_options(profile, overrides, tokenizer=_tokenizer(args, measured))
    return TwinSource(
        options,
        {"profile": str(args.profile), "profile_kind": profile.kind},
        replicas=args.replicas if router is not None else 1,
        router=router,
    )
