"""The cache-pressure workload: agents whose tools wait while one-shot traffic churns the KV cache.

Agents (a long pasted context, one tool call that waits up to 10 s, then the final
answer) share an engine with one-shot requests (a long unique document, a short
answer, no reuse). While an agent waits, the one-shots write more new KV than the cache
holds, so plain LRU evicts the waiting agent's context — it was freed before the
one-shots' blocks — and its next call recomputes it. The cache does hold every waiting
agent's context at once, so a policy that keeps waiting runs' context over finished
runs' blocks loses (almost) nothing: the hit rate reaches the theoretical maximum (the
hit rate of an infinite cache on the same requests).

The trace alone does not make pressure: it is meant for the engine settings in
:data:`PRESSURE_ENGINE` (32-token blocks, 240 of them, 4 sequences per step), at
:data:`PRESSURE_RATE` requests per second. ``scripts/pressure_replay.py`` runs it on the
twin and on the embedded engine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from agentrt.engine._vllm_args import kv_bytes_per_value

from ._schema import TraceRequest, TraceRequestId
from ._synthetic import SyntheticConfig, generate_synthetic
from ._trace import Trace

PRESSURE_RATE = 1.0
"""Arrivals per second (agents and one-shots together) the workload is sized for."""


@dataclass(frozen=True, slots=True)
class PressureEngine:
    """The engine the workload is sized for (the default model).

    ``kv_cache_bytes()`` gives the embedded engine ``num_blocks`` blocks on this machine:
    SmolLM2-135M keeps 11,520 K and V values per token (30 layers x K and V x 3 heads x
    64), 4 bytes each in float32 (CPUs without native bf16), 2 in bf16.
    """

    block_size: int = 32
    num_blocks: int = 240
    max_num_seqs: int = 4
    max_model_len: int = 2048
    kv_values_per_token: int = 11_520

    def kv_cache_bytes(self) -> int:
        per_token = self.kv_values_per_token * kv_bytes_per_value()
        return self.num_blocks * self.block_size * per_token


PRESSURE_ENGINE = PressureEngine()

AGENTS = SyntheticConfig(
    n_requests=10,
    system_tokens=100,
    query_tokens=(600, 800),
    llm_calls=(2, 2),
    p_parallel=0.0,
    tool_latency_median_s=10.0,
    tool_latency_sigma=0.3,
    tool_latency_bounds_s=(1.0, 10.0),
    result_tokens=(100, 200),
    output_tokens=(20, 40),
    final_tokens=(150, 250),
)
"""Agents: 600-800 tokens of context, one tool call of up to 10 s, a 150-250-token answer."""

ONE_SHOTS_PER_AGENT = 2
ONE_SHOTS = SyntheticConfig(
    n_requests=AGENTS.n_requests * ONE_SHOTS_PER_AGENT,
    system_tokens=0,
    query_tokens=(600, 800),
    llm_calls=(1, 1),
    final_tokens=(20, 40),
)
"""One-shots: a unique 600-800-token document and a 20-40-token answer (cold at once)."""


def pressure_trace(seed: int = 0) -> Trace:
    """The workload: each agent followed by its one-shots, in arrival order.

    Replay assigns arrivals per load (Poisson at :data:`PRESSURE_RATE` is what it is
    sized for); the order here is the order they arrive in. The same seed gives the
    same trace.
    """
    agents = generate_synthetic(dataclasses.replace(AGENTS, seed=seed))
    shots = generate_synthetic(dataclasses.replace(ONE_SHOTS, seed=seed + 1))
    k = ONE_SHOTS_PER_AGENT
    requests: list[TraceRequest] = []
    for i, agent in enumerate(agents.requests):
        requests.append(_renamed(agent, f"agent-{i:04d}"))
        for j, shot in enumerate(shots.requests[i * k : (i + 1) * k]):
            requests.append(_renamed(shot, f"oneshot-{i * k + j:04d}"))
    header = agents.header.model_copy(update={"source": "pressure", "description": describe()})
    return Trace(header, tuple(requests))


def describe() -> str:
    """What the workload is, for the report's header."""
    e = PRESSURE_ENGINE
    return (
        f"Cache pressure: {AGENTS.n_requests} agents (context {AGENTS.query_tokens} tokens, "
        f"one tool call of <= {AGENTS.tool_latency_bounds_s[1]:g} s, answer "
        f"{AGENTS.final_tokens} tokens), each followed by {ONE_SHOTS_PER_AGENT} one-shot "
        f"requests ({ONE_SHOTS.query_tokens}-token unique documents, {ONE_SHOTS.final_tokens}"
        f"-token answers); sized for {PRESSURE_RATE:g} requests/s on {e.num_blocks} KV blocks "
        f"of {e.block_size} tokens with max_num_seqs={e.max_num_seqs}."
    )


def _renamed(request: TraceRequest, new_id: str) -> TraceRequest:
    return request.model_copy(update={"id": TraceRequestId(new_id)})
