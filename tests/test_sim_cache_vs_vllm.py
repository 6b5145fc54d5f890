"""ScriptedEngine's KV cache and vLLM's real scheduler, block for block, on the same requests.

The same request sequence — shared system prompts, hints of every tier, sessions and
piggybacked releases, SPLIT_PENDING labels that expire, aborts, a cache salt, and more
distinct content than the 19 usable blocks hold — goes to a real ``TierScheduler``
(``scheduler_helpers``) and to ``SimKVCache`` driven in vLLM's order. After every step
both must agree on every request's blocks and prefix hits, the free queue's eviction
order, every block's tier and cached content, and the per-tier evictions and hits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from scheduler_helpers import BS, NUM_BLOCKS, SAMPLED, Driver, make_scheduler, write_model_dir

from agentrt.engine import CacheHint, SessionId, Tier
from agentrt.engine._sim_cache import SimKVCache, SimSequence
from agentrt.engine._tier_scheduler import TierScheduler
from agentrt.engine._tier_wire import TierPayload


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(slots=True, eq=False)
class _SimReq:
    rid: str
    seq: SimSequence
    max_tokens: int
    payload: TierPayload | None
    out: int = 0


@dataclass(slots=True)
class SimDriver:
    """Drives ``SimKVCache`` the way vLLM's scheduler drives its KV cache manager:
    releases on arrival; per step, running requests decode one token each, then waiting
    ones are admitted (prefix hit + whole prompt) until one does not fit; after the
    step each gets a sampled token and the finished ones free their blocks, in order."""

    cache: SimKVCache
    waiting: list[_SimReq] = field(default_factory=list)
    running: list[_SimReq] = field(default_factory=list)
    blocks: dict[str, list[int]] = field(default_factory=dict)
    requests: dict[str, _SimReq] = field(default_factory=dict)

    def add(
        self,
        rid: str,
        tokens: list[int],
        max_tokens: int,
        payload: TierPayload | None,
        *,
        cache_salt: str | None = None,
    ) -> None:
        if payload is not None:
            for session in payload.release:
                self.cache.release(session)
        r = _SimReq(rid, self.cache.new_sequence(tokens, cache_salt), max_tokens, payload)
        self.requests[rid] = r
        self.waiting.append(r)

    def step(self) -> list[str]:
        scheduled: list[_SimReq] = []
        for r in self.running:
            assert self.cache.allocate(r.seq, 1), "the test workload must never preempt"
            scheduled.append(r)
        while self.waiting:
            r = self.waiting[0]
            hits = self.cache.lookup(r.seq)
            if not self.cache.allocate(r.seq, len(r.seq.tokens) - len(hits) * BS, hits):
                break
            self.running.append(self.waiting.pop(0))
            scheduled.append(r)
        for r in scheduled:
            self.blocks[r.rid] = [b.block_id for b in r.seq.blocks]
            self.cache.append_token(r.seq, SAMPLED)
            r.out += 1
            if r.out >= r.max_tokens:
                self.running.remove(r)
                p = r.payload
                if p is not None and (p.hints or p.session):
                    self.cache.free(r.seq, p.hints, p.session)
                else:
                    self.cache.free(r.seq)
        return [r.rid for r in scheduled]

    def abort(self, rid: str) -> None:
        r = self.requests[rid]
        for queue in (self.waiting, self.running):
            if r in queue:
                queue.remove(r)
                self.cache.free(r.seq)


@dataclass(slots=True)
class Pair:
    """The two sides, fed the same operations."""

    real: Driver
    sim: SimDriver
    clock: Clock

    @property
    def in_flight(self) -> int:
        return len(self.sim.running) + len(self.sim.waiting)

    def add(
        self,
        rid: str,
        tokens: list[int],
        payload: TierPayload | None,
        *,
        max_tokens: int,
        salt: str | None = None,
    ) -> None:
        wire = None if payload is None else payload.to_extra_args()
        self.real.add(rid, tokens, max_tokens, wire, cache_salt=salt)
        self.sim.add(rid, tokens, max_tokens, payload, cache_salt=salt)
        self.assert_same()

    def step(self) -> None:
        assert self.real.step() == self.sim.step()
        self.assert_same()

    def abort(self, rid: str) -> None:
        self.real.abort(rid)
        self.sim.abort(rid)
        self.assert_same()

    def assert_same(self) -> None:
        real_sched = self.real.sched
        assert isinstance(real_sched, TierScheduler)
        real_q, sim_q = real_sched.tier_queue, self.sim.cache.queue
        assert self.real.blocks == self.sim.blocks
        assert self.real.free_order() == [b.block_id for b in sim_q.get_all_free_blocks()]
        ids = range(1, NUM_BLOCKS)
        assert [real_q.tier_of(i) for i in ids] == [sim_q.tier_of(i) for i in ids]
        pool = real_sched.kv_cache_manager.block_pool
        real_cached = [pool.blocks[i].block_hash is not None for i in ids]
        sim_blocks = {b.block_id: b for b in sim_q.get_all_free_blocks()}
        for r in self.sim.running:
            sim_blocks.update((b.block_id, b) for b in r.seq.blocks)
        sim_cached = [i in sim_blocks and sim_blocks[i].block_hash is not None for i in ids]
        assert real_cached == sim_cached
        assert real_q.stats() == sim_q.stats()
        assert real_q.num_pending == sim_q.num_pending
        sim_hits = {
            r.rid: r.seq.cached_tokens for r in self.sim.requests.values() if r.seq.scheduled
        }
        assert self.real.cached_tokens == sim_hits
        assert all(r.num_preemptions == 0 for r in self.real.requests.values())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("tiny-llama"))


def make_pair(model_dir: Path, **settings: object) -> Pair:
    clock = Clock()
    sched = make_scheduler(model_dir, **settings)
    assert isinstance(sched, TierScheduler)
    sched.tier_queue._clock = clock  # TTLs on a virtual clock, in both
    cache = SimKVCache(
        BS,
        NUM_BLOCKS - 1,  # vLLM keeps block 0 as its null block
        use_tiers=sched.tier_settings.use_tiers,
        pending_cap=sched.tier_settings.pending_cap,
        pending_ttl_s=sched.tier_settings.pending_ttl_s,
        live_ttl_s=sched.tier_settings.live_ttl_s,
        clock=clock,
    )
    return Pair(Driver(sched), SimDriver(cache), clock)


SYSTEM = list(range(500, 508))  # two blocks every run shares


def agent_call(
    session: int, turn: int, extra: list[int], *, pending_ttl: float | None
) -> tuple[list[int], TierPayload]:
    """An agent-like prompt: system prompt, the run's query, earlier turns, new tokens."""
    query = [600 + 10 * session + i for i in range(5)]
    history = [700 + 50 * session + i for i in range(3 * turn)]
    prompt = [*SYSTEM, *query, *history, *extra]
    n_sys, n_q = len(SYSTEM), len(SYSTEM) + len(query)
    hints = [CacheHint(0, n_sys, Tier.SYSTEM), CacheHint(n_sys, n_q, Tier.USER_QUERY)]
    if len(prompt) > n_q:
        hints.append(CacheHint(n_q, len(prompt), Tier.TOOL_OUTPUT))
    if pending_ttl is not None:
        hints.append(CacheHint(0, len(prompt), Tier.SPLIT_PENDING, pending_ttl, Tier.DEFAULT))
    return prompt, TierPayload(hints=tuple(hints), session=SessionId(f"run-{session}"))


def test_a_scripted_agent_workload_matches_vllm(model_dir: Path) -> None:
    p = make_pair(model_dir)
    # Run 0 calls the model, then prefills its split A (pending, 2 s) while run 1 starts.
    p.add("r0-call", *agent_call(0, 0, [900, 901], pending_ttl=None), max_tokens=3)
    p.step()
    p.add("r1-call", *agent_call(1, 0, [910], pending_ttl=None), max_tokens=2)
    p.step()
    p.add("r0-split", *agent_call(0, 1, [], pending_ttl=2.0), max_tokens=1)
    for _ in range(3):
        p.step()
    # Pressure: unhinted one-off prompts push cached blocks out while the split waits.
    for i in range(4):
        p.add(f"noise-{i}", [2000 + 40 * i + j for j in range(11)], None, max_tokens=2)
        p.step()
        p.step()
    assert p.sim.cache.queue.num_pending > 0
    p.clock.now += 3.0  # the split's tools took too long: its label expires to DEFAULT
    p.add("noise-x", [3000 + j for j in range(13)], None, max_tokens=1)
    p.step()
    # Run 0's last call; run 1 is aborted mid-decode; run 0's release rides the next one.
    p.add("r0-final", *agent_call(0, 1, [920, 921, 922], pending_ttl=None), max_tokens=3)
    p.step()
    p.add("r1-more", *agent_call(1, 1, [930], pending_ttl=None), max_tokens=4)
    p.step()
    p.abort("r1-more")
    release = TierPayload(release=(SessionId("run-0"),))
    p.add("after", [4000 + j for j in range(9)], release, max_tokens=2, salt="tenant-b")
    while p.in_flight:
        p.step()
    stats = p.sim.cache.queue.stats()
    assert sum(s.evictions for s in stats.values()) > 0, "the workload must evict"
    assert sum(s.hits for s in stats.values()) > 0, "the workload must hit free blocks"


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("use_tiers", [True, False])
def test_random_agent_workloads_match_vllm(model_dir: Path, seed: int, use_tiers: bool) -> None:
    rng = random.Random(seed)
    p = make_pair(model_dir, use_tiers=use_tiers, pending_cap=0.25)
    turns = [0] * 4
    for i in range(60):
        action = rng.random()
        if action < 0.45 and p.in_flight < 3:
            run = rng.randrange(4)
            extra = [rng.randrange(1000, 1100) for _ in range(rng.randrange(0, 4))]
            ttl = rng.choice([None, None, 0.5, 2.0])
            prompt, payload = agent_call(run, turns[run] % 3, extra, pending_ttl=ttl)
            turns[run] += 1
            if rng.random() < 0.2:
                other = SessionId(f"run-{(run + 1) % 4}")
                payload = TierPayload(payload.hints, payload.session, (other,))
            p.add(
                f"q{i}",
                prompt,
                payload if rng.random() < 0.9 else None,
                max_tokens=rng.randrange(1, 4),
                salt="tenant-b" if rng.random() < 0.1 else None,
            )
        elif action < 0.5 and p.sim.running:
            p.abort(rng.choice(p.sim.running).rid)
        elif action < 0.6:
            p.clock.now += rng.choice([0.3, 1.0, 3.0])
        else:
            p.step()
    while p.in_flight:
        p.step()
    evictions = sum(s.evictions for s in p.sim.cache.queue.stats().values())
    assert evictions > 0, "the workload must put the cache under pressure"
