"""Run priority with a bounded gap (issue 14): earlier runs first, later ones not starved."""

from __future__ import annotations

import anyio
import pytest

from agentrt import Agent, Switches
from agentrt._run_priority import RUN_PRIORITIES, RunPriorities
from agentrt.engine import ScriptedEngine, TimingModel
from agentrt.testing import run_virtual


def test_the_oldest_runs_keep_their_order_and_later_ones_share_the_cap() -> None:
    p = RunPriorities(max_gap=2)
    ranks = [p.open() for _ in range(6)]
    assert [p.priority(r) for r in ranks] == [0, 1, 2, 2, 2, 2]
    p.check_integrity()


def test_later_runs_move_up_as_earlier_ones_finish() -> None:
    p = RunPriorities(max_gap=2)
    ranks = [p.open() for _ in range(6)]
    p.close(ranks[1])  # closing a run in the middle changes nothing yet
    assert [p.priority(r) for r in ranks[2:]] == [2, 2, 2, 2]
    p.close(ranks[0])  # the oldest live run is now rank 2
    assert [p.priority(r) for r in ranks[2:]] == [2, 3, 4, 4]
    p.close(ranks[0])  # idempotent
    assert p.live() == 4
    p.check_integrity()


def test_the_gap_never_exceeds_max_gap_whatever_the_order_of_closing() -> None:
    p = RunPriorities(max_gap=3)
    ranks = [p.open() for _ in range(20)]
    closed: set[int] = set()
    for r in ranks[::3] + ranks[1::3]:
        p.close(r)
        closed.add(r)
        prios = [p.priority(x) for x in ranks if x not in closed]
        assert max(prios) - min(prios) <= 3
        assert prios == sorted(prios)  # never out of arrival order
        p.check_integrity()


def test_gap_zero_is_first_come_first_served() -> None:
    p = RunPriorities(max_gap=0)
    ranks = [p.open() for _ in range(3)]
    assert {p.priority(r) for r in ranks} == {0}


def test_a_negative_gap_is_refused() -> None:
    with pytest.raises(ValueError, match="max_gap"):
        RunPriorities(max_gap=-1)


def test_concurrent_agent_runs_send_bounded_priorities_and_close_their_ranks() -> None:
    """Eight runs at once on one engine: the requests' priorities stay within the gap of
    the oldest live run, and every run closes its rank."""

    async def main() -> list[int]:
        engine = ScriptedEngine(
            lambda ctx: "ok", timing=TimingModel(decode_step_s=0.01, max_num_seqs=1)
        )
        agent = Agent(instructions="Be brief.", engine=engine, switches=Switches(), tools=[])
        live_before = RUN_PRIORITIES.live()

        async def one(i: int) -> None:
            await anyio.sleep(0.001 * i)
            await agent.run(f"q{i}")

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, i)
        await engine.aclose()
        assert RUN_PRIORITIES.live() == live_before
        return [r.priority for r in engine.requests]

    prios = run_virtual(main)
    base = min(prios)
    assert [p - base for p in prios] == [0, 1, 2, 3, 4, 4, 4, 4]
    RUN_PRIORITIES.check_integrity()
