"""Run priority on the real engine: when runs wait for the engine, the earliest run goes first.

The set-up makes arrival order the opposite of run order. A blocker request holds the KV
cache, three agent runs start in the order A, B, C, and their requests reach the engine in
the order C, B, A; each needs more than half the cache, so they can only run one at a time.
When the blocker goes, vLLM's priority scheduler serves them by the runs' priorities (A
first); with run priority off, all priorities tie and it serves them as they came (C first).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncGenerator
from contextlib import aclosing

import anyio
import pytest
from async_helpers import eventually

from agentrt import Agent, RunResult, SamplingOptions, Switches
from agentrt.engine import Engine, EngineProxy, GenerateRequest, TokenDelta

pytestmark = [pytest.mark.anyio, pytest.mark.engine]

RUNS = ("A", "B", "C")


class ArrivalGate(EngineProxy):
    """Holds each generate request (keyed by its cache salt) until the test opens its gate."""

    def __init__(self, inner: Engine) -> None:
        super().__init__(inner)
        self.arrived: defaultdict[str | None, anyio.Event] = defaultdict(anyio.Event)
        self.opened: defaultdict[str | None, anyio.Event] = defaultdict(anyio.Event)

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]:
        self.arrived[request.cache_salt].set()
        await self.opened[request.cache_salt].wait()
        async with aclosing(self.inner.generate(request)) as stream:
            async for delta in stream:
                yield delta


def instructions_of(engine: Engine, name: str, tokens: int) -> str:
    """Instructions of about ``tokens`` tokens (the rest of the prompt adds a few more)."""
    head = f"You are run {name}. Answer with one word."
    word = " note"
    n = tokens - len(engine.tokenizer.encode(head))
    return head + word * n


@pytest.mark.parametrize(
    ("run_priority", "served"), [(True, ["A", "B", "C"]), (False, ["C", "B", "A"])]
)
async def test_earlier_runs_are_scheduled_first(
    vllm_engine: Engine, run_priority: bool, served: list[str]
) -> None:
    stats = await vllm_engine.stats()
    bs, blocks = stats.block_size, stats.num_blocks
    # More than half the cache each: no two of them (nor one and the blocker) fit together.
    tokens = (blocks // 2) * bs + bs // 2
    assert tokens + 8 < vllm_engine.info.max_model_len
    tag = uuid.uuid4().hex
    gate = ArrivalGate(vllm_engine)
    agents = {
        name: Agent(
            instructions=instructions_of(vllm_engine, name, tokens),
            engine=gate,
            max_iterations=1,
            sampling=SamplingOptions(max_tokens=2),
            switches=Switches(run_priority=run_priority),
            cache_salt=f"{name}-{tag}",
        )
        for name in RUNS
    }
    blocker = GenerateRequest(
        tuple(vllm_engine.tokenizer.encode(" wait" * tokens)),
        SamplingOptions(max_tokens=vllm_engine.info.max_model_len - tokens - 8, ignore_eos=True),
        cache_salt=f"blocker-{tag}",
    )
    results: dict[str, RunResult] = {}
    blocking, blocker_ended = anyio.Event(), anyio.Event()

    async def hold_the_cache(scope: anyio.CancelScope) -> None:
        with scope:
            async with aclosing(vllm_engine.generate(blocker)) as stream:
                async for delta in stream:
                    if delta.token_ids:
                        blocking.set()
            blocker_ended.set()  # ran to its end: it stopped holding the cache too early

    async def run(name: str) -> None:
        results[name] = await agents[name].run("Which run are you?")

    async def waiting(n: int) -> bool:
        return (await vllm_engine.stats()).num_waiting >= n

    with anyio.fail_after(240):
        async with anyio.create_task_group() as tg:
            blocker_scope = anyio.CancelScope()
            tg.start_soon(hold_the_cache, blocker_scope)
            await blocking.wait()
            for name in RUNS:  # the runs start in this order: A is the earliest
                tg.start_soon(run, name)
                await gate.arrived[agents[name].cache_salt].wait()
            for n, name in enumerate(reversed(RUNS), 1):  # the engine gets C first
                gate.opened[agents[name].cache_salt].set()
                # vLLM says nothing when a request joins its queue: poll its gauge.
                await eventually(lambda n=n: waiting(n), timeout_s=60)
            assert not blocker_ended.is_set(), "the blocker ended before all three waited"
            blocker_scope.cancel()

    for name in RUNS:
        (it,) = results[name].iterations
        assert it.prompt_tokens > (blocks // 2) * bs
    first_token = {name: results[name].iterations[0].first_token_t for name in RUNS}
    assert all(t is not None for t in first_token.values())
    assert sorted(RUNS, key=lambda name: first_token[name] or 0.0) == served
