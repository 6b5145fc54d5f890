"""Run priority with a bounded gap (issue 14): earlier runs first, later ones not starved."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import agentrt._turn
import agentrt.cli._replay
from agentrt import Agent, Switches
from agentrt._run_priority import DEFAULT_MAX_GAP, RunPriorities, gap_for_batch
from agentrt.cli import main as cli
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


def _priorities_of_eight_concurrent_runs(
    monkeypatch: pytest.MonkeyPatch, prios: RunPriorities, max_num_seqs: int
) -> list[int]:
    """Eight agent runs started 1 ms apart on one engine whose batch holds
    ``max_num_seqs``, taking ranks from ``prios`` (isolated from the process's, which
    other tests' runs share): the priorities their requests were sent with."""
    monkeypatch.setattr(agentrt._turn, "RUN_PRIORITIES", prios)

    async def main() -> list[int]:
        engine = ScriptedEngine(
            lambda ctx: "ok",
            timing=TimingModel(decode_step_s=0.01, max_num_seqs=max_num_seqs),
        )
        agent = Agent(instructions="Be brief.", engine=engine, switches=Switches(), tools=[])

        async def one(i: int) -> None:
            await anyio.sleep(0.001 * i)
            await agent.run(f"q{i}")

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, i)
        await engine.aclose()
        assert prios.live() == 0  # every run closed its rank
        return [r.priority for r in engine.requests]

    sent = run_virtual(main)
    prios.check_integrity()
    return sent


def test_concurrent_agent_runs_send_bounded_priorities_and_close_their_ranks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = _priorities_of_eight_concurrent_runs(monkeypatch, RunPriorities(max_gap=4), 1)
    assert sent == [0, 1, 2, 3, 4, 4, 4, 4]


def test_the_gap_is_half_the_engines_batch_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [gap_for_batch(n) for n in (None, 1, 2, 4, 128)] == [DEFAULT_MAX_GAP, 1, 1, 2, 64]
    run = _priorities_of_eight_concurrent_runs
    assert run(monkeypatch, RunPriorities(), 4) == [0, 1, 2, 2, 2, 2, 2, 2]
    assert run(monkeypatch, RunPriorities(), 64) == list(range(8))


def test_the_replay_gap_option_reaches_the_priorities_runs_send(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``agentrt replay --run-priority-gap 1``: with six runs live at once, later runs'
    priorities are capped (with the default, half the scripted engine's batch of 64,
    none would be)."""
    prios = RunPriorities()  # isolated from other tests' runs, for the CLI and the runs
    monkeypatch.setattr(agentrt._turn, "RUN_PRIORITIES", prios)
    monkeypatch.setattr(agentrt.cli._replay, "RUN_PRIORITIES", prios)
    sent: list[tuple[int, int]] = []
    plain = RunPriorities.priority

    def spy(self: RunPriorities, rank: int, max_num_seqs: int | None = None) -> int:
        prio = plain(self, rank, max_num_seqs)
        sent.append((rank, prio))
        return prio

    monkeypatch.setattr(RunPriorities, "priority", spy)
    args = [
        "replay", "--synthetic", "--synthetic-requests", "6", "--synthetic-calls", "2,3",
        "--token-scale", "1/8", "--rates", "50", "--modes", "run_priority",
        "--engine", "scripted", "--run-priority-gap", "1", "--no-plots", "--out", str(tmp_path),
    ]  # fmt: skip
    assert cli(args) == 0
    assert prios.max_gap == 1
    assert any(prio < rank for rank, prio in sent), sent


def test_a_negative_replay_gap_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli(["replay", "--synthetic", "--engine", "scripted", "--run-priority-gap", "-1"])
    assert "must be at least 0" in capsys.readouterr().err
