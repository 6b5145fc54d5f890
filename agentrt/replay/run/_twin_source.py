"""The twin as a replay engine source: every run on a fresh vLLM twin, in simulated time.

The twin (``agentrt.engine`` ``TwinEngine``) runs vLLM's own scheduler and KV cache with
step times from a cost profile: a measured one (``agentrt engine profile``), whose twin
reproduces the profiled engine's configuration, or a GPU roofline (``a100-80gb``,
``h100-80gb``) for what-ifs. With a ``router`` named, every run gets ``replicas`` such
twins behind a model of vllm-router's policy (``TwinReplicas``). Every figure it
produces is simulated; reports say so.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from agentrt.engine import ChatTokenizer, Engine, EngineError
from agentrt.engine._clock import now
from agentrt.engine._twin import TwinEngine, TwinOptions
from agentrt.engine._twin_replicas import TwinReplicas
from agentrt.engine._twin_router import make_policy


class TwinSource:
    """A fresh ``TwinEngine`` (cold cache, new scheduler) for every run, or with
    ``router`` set, ``replicas`` fresh ones behind a fresh router model.

    ``describe()`` states the simulated configuration and the twin's own speed: simulated
    seconds per wall-clock second over the runs so far.

    Raises:
        ValueError: fewer than one replica, or an unknown router policy.
    """

    def __init__(
        self,
        options: TwinOptions,
        description: dict[str, Any] | None = None,
        *,
        replicas: int = 1,
        router: str | None = None,
    ) -> None:
        # Resolved once: every run's engine renders with the same tokenizer object.
        self.options = dataclasses.replace(options, tokenizer=options.resolved_tokenizer())
        self.description = dict(description or {})
        make_policy(router or "round_robin", replicas)  # refuse bad values before any run
        self.replicas = replicas
        self.router = router
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
            **({"replicas": self.replicas, "router": self.router} if self.router else {}),
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
        engine: TwinEngine | TwinReplicas = (
            TwinReplicas(self.options, self.replicas, self.router)
            if self.router is not None
            else TwinEngine(self.options)
        )
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
