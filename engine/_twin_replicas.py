"""``TwinReplicas``: N twin engines behind a model of vllm-router, as one Engine.

What ``agentrt engine cluster`` runs for real — replicas, each with its own scheduler and
KV cache, behind a router — simulated: the replicas are ``TwinEngine``s on one event
loop, so they share one (virtual) clock and step concurrently in simulated time, and a
``RouterPolicy`` (``_twin_router``) picks the replica of every request, a split prefill
included, from what the real router sees (prompt, session header, requests in flight).
The orchestrator and trace replay see one ``Engine``, as they see ``HTTPEngine`` pointed
at a router.

A release goes, as ``HTTPEngine`` sends it behind a router, to the replica holding the
session, and the router is told the session is over (``finish_session``). Where a
policy spread the session over several replicas (round-robin, cache-aware), every one of
them gets the release: the real router would route that one request by its policy and
reach only one of them, so the twin shows those policies at their best.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from ._base import EngineBase
from ._protocol import EngineError
from ._replicas import sum_stats
from ._twin import TwinEngine, TwinOptions
from ._twin_router import RouteQuery, RouterPolicy, make_policy
from ._types import (
    EngineInfo,
    EngineStats,
    GenerateRequest,
    PrefillRequest,
    PrefillStats,
    SessionId,
    TokenDelta,
)


@dataclass(slots=True)
class ReplicaTally:
    """What one replica was sent, counted by the router model.

    ``requests`` counts generate calls, ``prefills`` prefill calls; ``prompt_tokens`` and
    ``cached_tokens`` sum the finished generate calls' statistics (the KV hit rate replay
    reports, per replica); ``releases`` counts releases delivered to it.
    """

    requests: int = 0
    prefills: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    releases: int = 0
    sessions: set[str] = field(default_factory=set)

    @property
    def kv_hit(self) -> float | None:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else None


class TwinReplicas(EngineBase):
    """Several simulated vLLM replicas behind a simulated router (module docstring).

    Invariants: every request goes to exactly the replica ``policy`` chose, and every
    request of a session is recorded in ``owners[session]`` (its replicas, in order of
    first use); ``in_flight[r]`` counts requests sent to ``r`` whose stream is still
    open; a release reaches each replica in ``owners[session]`` once per call.
    """

    def __init__(self, options: TwinOptions, replicas: int, policy: str | RouterPolicy) -> None:
        if replicas < 1:
            raise ValueError(f"TwinReplicas: replicas must be at least 1, got {replicas}")
        self.policy = make_policy(policy, replicas) if isinstance(policy, str) else policy
        self.replicas = [TwinEngine(options, id_prefix=f"twin{r}") for r in range(replicas)]
        first = self.replicas[0].info
        info = EngineInfo(
            model=first.model,
            max_model_len=first.max_model_len,
            block_size=first.block_size,
            supports_hints=first.supports_hints,
            backend="twin",
            max_num_seqs=first.max_num_seqs,  # per replica: each schedules its own batch
        )
        super().__init__(self.replicas[0].tokenizer, info, id_prefix="twin-router")
        self.in_flight = [0] * replicas
        self.tallies = [ReplicaTally() for _ in range(replicas)]
        self.owners: dict[str, list[int]] = {}
        self._closed = False

    def _route(self, prompt: Sequence[int], session: SessionId | None) -> int:
        r = self.policy.choose(RouteQuery(prompt, session), self.in_flight)
        if session is not None:
            self.tallies[r].sessions.add(session)
            owners = self.owners.setdefault(session, [])
            if r not in owners:
                owners.append(r)
        return r

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]:
        if self._closed:
            raise EngineError("engine is closed")
        r = self._route(request.prompt, request.session)
        tally = self.tallies[r]
        tally.requests += 1
        self.in_flight[r] += 1
        try:
            async with aclosing(self.replicas[r].generate(request)) as stream:
                async for delta in stream:
                    if delta.stats is not None:
                        tally.prompt_tokens += delta.stats.prompt_tokens
                        tally.cached_tokens += delta.stats.cached_tokens
                    yield delta
        finally:
            self.in_flight[r] -= 1

    async def prefill(self, request: PrefillRequest) -> PrefillStats:
        """A prefill is a request of its own for the router too (counted apart from
        ``generate`` calls, as replay's KV hit rate counts them apart)."""
        if self._closed:
            raise EngineError("engine is closed")
        r = self._route(request.prompt, request.session)
        self.tallies[r].prefills += 1
        self.in_flight[r] += 1
        try:
            return await self.replicas[r].prefill(request)
        finally:
            self.in_flight[r] -= 1

    async def release(self, session: SessionId) -> None:
        """Tell the router the session is over, and release it where it lives."""
        self.policy.finish_session(session)
        for r in self.owners.get(session, ()):
            self.tallies[r].releases += 1
            await self.replicas[r].release(session)

    async def stats(self) -> EngineStats:
        """Every replica's statistics summed (as ``HTTPEngine`` behind a router sums them)."""
        return sum_stats(await self.replica_stats())

    async def replica_stats(self) -> list[EngineStats]:
        """Each replica's own statistics, in replica order."""
        return [await e.stats() for e in self.replicas]

    async def reset_prefix_cache(self) -> None:
        """Forget every replica's cached blocks.

        Raises:
            EngineError: requests are still running on a replica.
        """
        for e in self.replicas:
            await e.reset_prefix_cache()

    async def aclose(self) -> None:
        self._closed = True
        for e in self.replicas:
            await e.aclose()

    def run_facts(self) -> dict[str, Any]:
        """Where requests went and what each replica's cache gave them (for reports).

        ``sessions_split`` counts sessions whose requests reached more than one replica;
        ``prefix_cache`` is each replica's vLLM counters (queries, hits).
        """
        replicas = []
        for e, t in zip(self.replicas, self.tallies, strict=True):
            c = e.core.counters
            replicas.append(
                {
                    "requests": t.requests,
                    "prefills": t.prefills,
                    "sessions": len(t.sessions),
                    "releases": t.releases,
                    "prompt_tokens": t.prompt_tokens,
                    "cached_tokens": t.cached_tokens,
                    "kv_hit": t.kv_hit,
                    "prefix_cache": {
                        "queries": c.prefix_cache_queries,
                        "hits": c.prefix_cache_hits,
                    },
                    "simulated_busy_s": round(e.simulated_busy_s, 3),
                }
            )
        return {
            "router": self.policy.name,
            "replicas": replicas,
            "sessions": len(self.owners),
            "sessions_split": sum(1 for o in self.owners.values() if len(o) > 1),
        }

    @property
    def num_steps(self) -> int:
        """Steps simulated over all replicas."""
        return sum(e.num_steps for e in self.replicas)
