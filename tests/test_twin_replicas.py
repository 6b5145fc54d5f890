"""Twin replicas behind a model of vllm-router: where each policy sends a run's requests,
what that does to the KV hit rate, and where releases go.

Every test runs N twins (vLLM's real scheduler and KV cache, no model) on one virtual
clock (``run_virtual``); the model folder holds only a config.json.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from scheduler_helpers import write_model_dir

from agentrt.engine import (
    ByteCodec,
    CacheHint,
    ChatTokenizer,
    GenerateRequest,
    SamplingOptions,
    SessionId,
    Tier,
)
from agentrt.engine._twin import TwinOptions
from agentrt.engine._twin_core import TwinSettings
from agentrt.engine._twin_cost import LinearStepCost
from agentrt.engine._twin_model import ModelSpec
from agentrt.engine._twin_replicas import TwinReplicas
from agentrt.engine._twin_router import CacheAware, RouteQuery, make_policy
from agentrt.testing import run_virtual

COST = LinearStepCost(step_s=0.01, prefill_token_s=0.001, decode_seq_s=0.002)
TOK = ChatTokenizer(ByteCodec())
SYSTEM = tuple(range(1, 33))  # 32 tokens every run shares (two 16-token blocks)


@pytest.fixture(scope="module")
def options(tmp_path_factory: pytest.TempPathFactory) -> TwinOptions:
    model = ModelSpec.load(
        write_model_dir(tmp_path_factory.mktemp("tiny-llama"), max_position_embeddings=4096)
    )
    settings = TwinSettings(
        block_size=16,
        num_blocks=128,
        max_model_len=1024,
        max_num_seqs=8,
        max_num_batched_tokens=256,
    )
    return TwinOptions(model, COST, settings, "float32", TOK)


def request(prompt: tuple[int, ...], session: str | None, out: int = 8) -> GenerateRequest:
    return GenerateRequest(
        prompt,
        SamplingOptions(max_tokens=out),
        session=None if session is None else SessionId(session),
        forced_output=tuple(range(900, 900 + out)),
    )


async def call(engine: TwinReplicas, req: GenerateRequest) -> int:
    """Run ``req`` to its end; its cached prompt tokens."""
    stats = None
    async for delta in engine.generate(req):
        stats = delta.stats or stats
    assert stats is not None and stats.finish_reason != "error", stats
    return stats.cached_tokens


async def agent_runs(engine: TwinReplicas, sessions: int, iterations: int) -> None:
    """``sessions`` concurrent runs, each growing its own prompt ``iterations`` times."""

    async def run(s: int) -> None:
        prompt = SYSTEM + tuple(range(100 + 40 * s, 140 + 40 * s))
        out = 4 + 7 * s  # runs answer at different paces, as agent runs do
        for k in range(iterations):
            await call(engine, request(prompt, f"run{s}", out))
            start = 2000 + 97 * s + 13 * k
            prompt += tuple(range(900, 900 + out)) + tuple(range(start, start + 24))

    async with anyio.create_task_group() as tg:
        for s in range(sessions):
            tg.start_soon(run, s)


def hit_rate(engine: TwinReplicas) -> float:
    prompt = sum(t.prompt_tokens for t in engine.tallies)
    return sum(t.cached_tokens for t in engine.tallies) / prompt


def test_session_affine_keeps_every_request_of_a_run_on_one_replica(options: TwinOptions) -> None:
    async def main() -> tuple[dict[str, list[int]], list[int]]:
        engine = TwinReplicas(options, 3, "session_affine")
        await agent_runs(engine, sessions=6, iterations=3)
        await engine.aclose()
        return engine.owners, [len(t.sessions) for t in engine.tallies]

    owners, per_replica = run_virtual(main)
    assert len(owners) == 6 and all(len(o) == 1 for o in owners.values())
    assert per_replica == [2, 2, 2]  # new sessions go to the replica with the fewest


def test_round_robin_spreads_a_run_over_the_replicas(options: TwinOptions) -> None:
    async def main() -> tuple[dict[str, list[int]], list[int]]:
        engine = TwinReplicas(options, 3, "round_robin")
        await agent_runs(engine, sessions=1, iterations=6)
        await engine.aclose()
        return engine.owners, [t.requests for t in engine.tallies]

    owners, requests = run_virtual(main)
    assert owners == {"run0": [0, 1, 2]}
    assert requests == [2, 2, 2]


def test_cache_aware_picks_the_replica_that_was_sent_the_prefix(options: TwinOptions) -> None:
    a = SYSTEM + tuple(range(200, 264))
    b = tuple(range(300, 396))

    async def main() -> tuple[list[int], int]:
        engine = TwinReplicas(options, 3, "cache_aware")
        async with anyio.create_task_group() as tg:  # a busy replica 0 sends b elsewhere
            tg.start_soon(call, engine, request(a, None, out=30))
            await anyio.sleep(0.001)
            tg.start_soon(call, engine, request(b, None))
        # Every replica idle now: the least loaded would be replica 0, but b's holder wins.
        cached = await call(engine, request(b + tuple(range(500, 532)), None))
        await engine.aclose()
        return [t.requests for t in engine.tallies], cached

    requests, cached = run_virtual(main)
    assert requests == [1, 2, 0]
    assert cached == 96  # b's six blocks, computed on replica 1


def test_cache_aware_leaves_the_prefix_when_the_load_is_imbalanced() -> None:
    policy = CacheAware(3)
    prompt = tuple(range(64))
    assert policy.choose(RouteQuery(prompt, None), [0, 0, 0]) == 0
    assert policy.choose(RouteQuery(prompt + (7,) * 16, None), [1, 0, 0]) == 0  # holder
    # 70 in flight at the holder, none elsewhere: imbalanced, so the least loaded.
    assert policy.choose(RouteQuery(prompt + (8,) * 16, None), [70, 0, 3]) == 1
    policy.index.check_integrity()


def test_session_affine_hits_clearly_more_than_round_robin(options: TwinOptions) -> None:
    async def rate(policy: str) -> float:
        engine = TwinReplicas(options, 4, policy)
        # 5 runs on 4 replicas: round-robin cannot pin a run to one by accident.
        await agent_runs(engine, sessions=5, iterations=4)
        await engine.aclose()
        return hit_rate(engine)

    affine = run_virtual(rate, "session_affine")
    spread = run_virtual(rate, "round_robin")
    assert affine > spread + 0.25, (affine, spread)


def test_a_release_reaches_the_replica_that_holds_the_session(options: TwinOptions) -> None:
    hints = (CacheHint(0, 32, Tier.SYSTEM), CacheHint(32, 64, Tier.USER_QUERY))

    async def main() -> tuple[list[int], list[int], list[int]]:
        engine = TwinReplicas(options, 2, "session_affine")
        for s, base in (("a", 100), ("b", 300)):
            prompt = SYSTEM + tuple(range(base, base + 33))
            req = GenerateRequest(
                prompt, SamplingOptions(max_tokens=1), hints=hints, session=SessionId(s)
            )
            await call(engine, req)
        home = engine.owners["a"][0]
        await engine.release(SessionId("a"))
        # A session-less request goes to the replica with the fewest sessions: a's,
        # whose release rides on it (as a twin applies releases).
        await call(engine, request(tuple(range(700, 720)), None, out=1))
        assert engine.tallies[home].requests == 2
        user_blocks = [(await e.stats()).tiers["USER_QUERY"].cached_blocks for e in engine.replicas]
        await engine.aclose()
        return [home], [t.releases for t in engine.tallies], user_blocks

    [home], releases, user_blocks = run_virtual(main)
    assert releases[home] == 1 and releases[1 - home] == 0
    assert user_blocks[home] == 0  # a's query blocks demoted where a lived
    assert user_blocks[1 - home] == 2  # b's untouched


def test_an_unknown_policy_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="router policy must be one of"):
        make_policy("fastest", 2)


def test_replica_request_ids_are_unique_across_replicas(
    options: TwinOptions, tmp_path: Path
) -> None:
    async def main() -> set[str]:
        engine = TwinReplicas(options, 2, "round_robin")
        ids = set()
        for i in range(4):
            async for d in engine.generate(request(tuple(range(10 + i, 30 + i)), None, out=1)):
                if d.stats is not None:
                    ids.add(d.stats.request_id)
        await engine.aclose()
        return ids

    assert len(run_virtual(main)) == 4
