"""Forced output for trace replay: a vLLM logits processor that emits exactly given tokens.

Loaded by vLLM in its engine-core process by dotted path
(``logits_processors=["agentrt.engine._forced:ForcedOutputProcessor"]``). A request opts
in through ``SamplingParams.extra_args["agentrt_forced"]`` (a list of token ids); step k
masks every logit but token k, so any sampler picks it. Requests without it are untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

FORCED_KEY = "agentrt_forced"


def forced_tokens(extra_args: dict[str, Any] | None) -> list[int] | None:
    """The forced output of a request, if it asked for one."""
    if not extra_args:
        return None
    forced = extra_args.get(FORCED_KEY)
    if not forced:
        return None
    return [int(t) for t in forced]


class ForcedOutputProcessor(AdapterLogitsProcessor):
    """Per-request processor: output token k is ``forced[k]`` (the last one repeats)."""

    def is_argmax_invariant(self) -> bool:
        # It changes which token wins, so vLLM must apply it even for greedy decoding.
        return False

    def new_req_logits_processor(
        self, params: SamplingParams
    ) -> Callable[[Sequence[int], torch.Tensor], torch.Tensor] | None:
        forced = forced_tokens(params.extra_args)
        if forced is None:
            return None
        last = len(forced) - 1

        def force(output_ids: Sequence[int], logits: torch.Tensor) -> torch.Tensor:
            token = forced[min(len(output_ids), last)]
            logits.fill_(float("-inf"))
            logits[token] = 0.0
            return logits

        return force
