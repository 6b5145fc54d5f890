"""``agentrt replay --engine twin``: every run on a fresh vLLM twin, in simulated time.

The twin (``agentrt.engine`` ``TwinEngine``) runs vLLM's own scheduler and KV cache with
step times from a cost profile: a measured one (``agentrt engine profile``), whose twin
reproduces the profiled engine's configuration, or a GPU roofline (``a100-80gb``,
``h100-80gb``) for what-ifs. Every figure it produces is simulated; reports say so.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from agentrt.engine import ByteCodec, ChatTokenizer, Engine, EngineError, default_model_dir
from agentrt.engine._clock import now
from agentrt.engine._twin import TwinEngine, TwinOptions
from agentrt.engine._twin_build import TwinOverrides, twin_options
from agentrt.engine._twin_profile import MeasuredProfile, load_profile


def add_twin_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``--engine twin`` (``--block-size``, ``--max-num-seqs`` and
    ``--max-model-len`` of the engine group apply too)."""
    g = parser.add_argument_group("twin engine (--engine twin; every figure is simulated)")
    g.add_argument(
        "--profile",
        default="a100-80gb",
        help="cost profile: a100-80gb, h100-80gb (GPU roofline) or a file written by "
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
        "--twin-tokenizer",
        default=None,
        help="a folder with tokenizer.json, or 'bytes' (fastest; chat-template text counts "
        "a token per byte) (default: the measured model's, else the default model's)",
    )


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


def twin_source(args: argparse.Namespace) -> TwinSource:
    """The engine source ``--engine twin`` and its options name.

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
        gpu_memory_utilization=args.gpu_memory_utilization,
        kv_scale=args.kv_scale,
    )
    options = twin_options(profile, overrides, tokenizer=_tokenizer(args, measured))
    return TwinSource(options, {"profile": str(args.profile), "profile_kind": profile.kind})


class TwinSource:
    """A fresh ``TwinEngine`` (cold cache, new scheduler) for every run.

    ``describe()`` states the simulated configuration and the twin's own speed: simulated
    seconds per wall-clock second over the runs so far.
    """

    def __init__(self, options: TwinOptions, description: dict[str, Any] | None = None) -> None:
        # Resolved once: every run's engine renders with the same tokenizer object.
        self.options = dataclasses.replace(options, tokenizer=options.resolved_tokenizer())
        self.description = dict(description or {})
        self.simulated_s = 0.0
        self.wall_s = 0.0
        self.steps = 0

    @property
    def tokenizer(self) -> ChatTokenizer:
        return self.options.resolved_tokenizer()

    def describe(self) -> dict[str, Any]:
        s = self.options.settings
        return {
            "engine": "vLLM twin (simulated)",
            "simulated": True,
            **self.description,
            "model": self.options.model.name,
            "cost": self.options.cost.describe(),
            "block_size": s.block_size,
            "num_blocks": s.num_blocks,
            "max_num_batched_tokens": s.max_num_batched_tokens,
            "max_num_seqs": s.max_num_seqs,
            "max_model_len": s.max_model_len,
            "long_prefill_token_threshold": s.long_prefill_token_threshold,
            "twin_speed": {
                "simulated_s": round(self.simulated_s, 3),
                "wall_s": round(self.wall_s, 3),
                "simulated_s_per_wall_s": round(self.simulated_s / self.wall_s, 2)
                if self.wall_s > 0
                else None,
                "steps": self.steps,
            },
        }

    @asynccontextmanager
    async def run_engine(self) -> AsyncIterator[Engine]:
        engine = TwinEngine(self.options)
        wall0, sim0 = time.perf_counter(), now()
        try:
            yield engine
        finally:
            self.wall_s += time.perf_counter() - wall0
            self.simulated_s += now() - sim0
            self.steps += engine.num_steps
            try:
                await engine.aclose()
            except Exception as exc:  # its step loop died mid-run: the run is void
                raise EngineError(f"the twin failed during the run: {exc}") from exc
