"""The GPU what-if cost model: a roofline over the FLOPs and bytes of each step.

``t = max(FLOPs / (peak * compute_fraction), bytes / (bandwidth * memory_fraction))
+ all-reduces + step_overhead`` per GPU of a tensor-parallel group. The counts come from
the model's architecture (``ModelSpec``) and the step's shape; the device constants and
their public sources are in the bundled profiles (``twin_data/devices``) and docs/TWIN.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ._twin_cost import StepShape
from ._twin_model import ModelSpec


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One accelerator: dense peak math, memory, and the link to its tensor-parallel peers.

    Raises:
        ValueError: naming a field that is not a positive number.
    """

    name: str
    peak_flops: float
    memory_bandwidth: float
    memory_bytes: int
    link_bandwidth: float

    def __post_init__(self) -> None:
        for f in ("peak_flops", "memory_bandwidth", "memory_bytes", "link_bandwidth"):
            value = getattr(self, f)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"device.{f} must be a positive number, got {value!r}")


@dataclass(frozen=True, slots=True)
class RooflineSettings:
    """How close the device gets to its peaks, and the fixed costs around the math.

    Raises:
        ValueError: a fraction outside (0, 1] or a negative time.
    """

    compute_fraction: float
    memory_fraction: float
    step_overhead_s: float
    allreduce_latency_s: float = 0.0

    def __post_init__(self) -> None:
        for f in ("compute_fraction", "memory_fraction"):
            if not 0 < getattr(self, f) <= 1:
                raise ValueError(f"{f} must be in (0, 1], got {getattr(self, f)!r}")
        for f in ("step_overhead_s", "allreduce_latency_s"):
            if not getattr(self, f) >= 0:
                raise ValueError(f"{f} must be >= 0, got {getattr(self, f)!r}")


@dataclass(frozen=True, slots=True)
class StepWork:
    """FLOPs and bytes of one step on one GPU, and its all-reduce seconds."""

    flops: float
    bytes: float
    comm_s: float


@dataclass(frozen=True, slots=True)
class RooflineCost:
    """Step time of ``model`` on ``tensor_parallel`` GPUs like ``device``.

    Counted per step (every GPU does 1/tp of each):
      * FLOPs: 2 per weight per token through the decoder layers, 2 per LM-head weight
        per sequence (vLLM computes logits for one position of each), and 4 per
        (query, key) pair per head per layer for attention (QK^T and AV).
      * bytes: every layer weight and the LM head read once, the KV of every scheduled
        token's context read once, and the new tokens' KV written.
      * all-reduces: two per layer (after attention and after the MLP) of the step's
        hidden states, ring algorithm, plus a fixed latency each.
    Activations are left out (they stay in on-chip memory for the fused kernels).
    """

    model: ModelSpec
    device: DeviceSpec
    settings: RooflineSettings
    tensor_parallel: int = 1

    def __post_init__(self) -> None:
        if self.tensor_parallel < 1:
            raise ValueError(f"tensor_parallel must be >= 1, got {self.tensor_parallel}")

    @property
    def kv_bytes_per_token_per_gpu(self) -> float:
        """KV heads split over the group; with fewer heads than GPUs each GPU keeps one."""
        m = self.model
        heads = math.ceil(m.num_kv_heads / self.tensor_parallel)
        return 2 * m.num_layers * heads * m.head_dim * m.dtype_bytes

    def work(self, shape: StepShape) -> StepWork:
        m, tp = self.model, self.tensor_parallel
        linear = 2.0 * m.layer_params * shape.tokens + 2.0 * m.lm_head_params * shape.sequences
        pairs = shape.prefill_pairs + sum(c + 1 for c in shape.decodes)
        attention = 4.0 * m.num_layers * m.num_heads * m.head_dim * pairs
        weights = (m.layer_params + m.lm_head_params) * m.dtype_bytes / tp
        context = sum(c.context for c in shape.prefills) + shape.decode_context
        kv = (context + shape.tokens) * self.kv_bytes_per_token_per_gpu
        comm = 0.0
        if tp > 1:
            message = shape.tokens * m.hidden_size * m.dtype_bytes
            ring = 2 * (tp - 1) / tp * message / self.device.link_bandwidth
            comm = 2 * m.num_layers * (self.settings.allreduce_latency_s + ring)
        return StepWork((linear + attention) / tp, weights + kv, comm)

    def step_time(self, shape: StepShape) -> float:
        if shape.is_empty:
            return 0.0
        w = self.work(shape)
        s, d = self.settings, self.device
        compute = w.flops / (d.peak_flops * s.compute_fraction)
        memory = w.bytes / (d.memory_bandwidth * s.memory_fraction)
        return max(compute, memory) + w.comm_s + s.step_overhead_s

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "roofline",
            "model": self.model.name,
            "device": asdict(self.device),
            "settings": asdict(self.settings),
            "tensor_parallel": self.tensor_parallel,
        }


def kv_cache_blocks(
    cost: RooflineCost,
    *,
    block_size: int,
    gpu_memory_utilization: float,
    runtime_reserve_bytes: int,
) -> int:
    """KV blocks the engine gets, the way vLLM sizes its cache on a GPU.

    Per GPU: ``utilization * memory - weights / tp - runtime reserve`` (activations of the
    profiling run, CUDA graphs and context), divided by the bytes of one block's KV.

    Raises:
        ValueError: the weights (and reserve) leave no room for a single block.
    """
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
    dev, m, tp = cost.device, cost.model, cost.tensor_parallel
    free = gpu_memory_utilization * dev.memory_bytes - m.weight_bytes / tp - runtime_reserve_bytes
    blocks = int(free // (block_size * cost.kv_bytes_per_token_per_gpu))
    if blocks < 1:
        raise ValueError(
            f"{m.name} ({m.weight_bytes / 2**30:.1f} GiB of weights) leaves no KV cache on "
            f"{tp} x {dev.name} at {gpu_memory_utilization:g} memory utilization"
        )
    return blocks
