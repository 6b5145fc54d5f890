"""A real vLLM scheduler without a model, for tests: a hand-made config and fake outputs.

A ``VllmConfig`` is built from a ``config.json`` in a temporary folder (no weights, no
tokenizer) and the scheduler is driven with fake model outputs, the way vLLM's own
scheduler tests do. Block size 4, 20 blocks: block 0 is vLLM's null block.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from vllm import SamplingParams
from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig
from vllm.utils.hashing import sha256
from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
from vllm.v1.outputs import ModelRunnerOutput
from vllm.v1.request import Request, RequestStatus
from vllm.v1.structured_output import StructuredOutputManager

from agentrt.engine._tier_scheduler import TierScheduler

BS = 4
NUM_BLOCKS = 20
SAMPLED = 7  # the token every request samples
init_none_hash(sha256)
_hasher = get_request_block_hasher(BS, sha256)


def write_model_dir(folder: Path, *, max_position_embeddings: int = 512) -> Path:
    """A model folder holding only a config: enough for VllmConfig, no weights needed."""
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 1,
        "vocab_size": 1000,
        "max_position_embeddings": max_position_embeddings,
        "rms_norm_eps": 1e-5,
        "torch_dtype": "float32",
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def make_scheduler(
    model_dir: Path, cls: type[Scheduler] = TierScheduler, **additional: Any
) -> Scheduler:
    """A scheduler over ``NUM_BLOCKS`` blocks of ``BS`` tokens (``additional``: TierSettings)."""
    model = ModelConfig(
        model=str(model_dir), skip_tokenizer_init=True, dtype="float32", max_model_len=256
    )
    sched = SchedulerConfig(
        max_num_seqs=16, max_num_batched_tokens=256, max_model_len=256, is_encoder_decoder=False
    )
    cache = CacheConfig(block_size=BS, enable_prefix_caching=True)
    cache.num_gpu_blocks = NUM_BLOCKS
    config = VllmConfig(
        model_config=model,
        scheduler_config=sched,
        cache_config=cache,
        additional_config={"agentrt": additional} if additional else {},
    )
    spec = FullAttentionSpec(block_size=BS, num_kv_heads=1, head_size=1, dtype=torch.float32)
    kv = KVCacheConfig(
        num_blocks=NUM_BLOCKS,
        kv_cache_tensors=[],
        kv_cache_groups=[KVCacheGroupSpec(["layer0"], spec)],
    )
    return cls(
        vllm_config=config,
        kv_cache_config=kv,
        structured_output_manager=StructuredOutputManager(config),
        block_size=BS,
        log_stats=True,
    )


class Driver:
    """Feeds a scheduler requests and fake model outputs (every request samples ``SAMPLED``).

    ``blocks`` holds each request's block ids as of its last scheduled step; ``requests``
    every request added, finished or not; ``cached_tokens`` each scheduled request's
    prefix-cache hit in tokens, as vLLM reports it.
    """

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched
        self.blocks: dict[str, list[int]] = {}
        self.requests: dict[str, Request] = {}
        self.cached_tokens: dict[str, int] = {}

    def add(
        self,
        rid: str,
        tokens: list[int],
        max_tokens: int = 1,
        payload: Any = None,
        *,
        cache_salt: str | None = None,
    ) -> None:
        extra = None if payload is None else {"agentrt": payload}
        params = SamplingParams(max_tokens=max_tokens, ignore_eos=True, extra_args=extra)
        req = Request(rid, tokens, params, None, cache_salt=cache_salt, block_hasher=_hasher)
        self.requests[rid] = req
        self.sched.add_request(req)

    def step(self) -> list[str]:
        """Run one step; returns the ids scheduled in it, in vLLM's order."""
        out = self.sched.schedule()
        ids = list(out.num_scheduled_tokens)
        for rid in ids:
            (self.blocks[rid],) = self.sched.kv_cache_manager.get_block_ids(rid)
        result = ModelRunnerOutput(
            req_ids=ids,
            req_id_to_index={r: i for i, r in enumerate(ids)},
            sampled_token_ids=[[SAMPLED] for _ in ids],
        )
        for outputs in self.sched.update_from_output(out, result).values():
            for o in outputs.outputs:
                if o.prefill_stats is not None:
                    self.cached_tokens[o.request_id] = o.prefill_stats.num_local_cached_tokens
        return ids

    def abort(self, rid: str) -> None:
        self.sched.finish_requests(rid, RequestStatus.FINISHED_ABORTED)

    def free_order(self) -> list[int]:
        return [
            b.block_id
            for b in self.sched.kv_cache_manager.block_pool.free_block_queue.get_all_free_blocks()
        ]
