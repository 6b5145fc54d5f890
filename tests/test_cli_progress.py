"""Replay progress: a line per finished request when stderr is not a terminal (logs show
how far a load has got), a redrawn tqdm bar when it is."""

from __future__ import annotations

import io

from agentrt.cli._progress import ProgressBar
from agentrt.engine import ByteCodec, ChatTokenizer, TimingModel
from agentrt.replay import SyntheticConfig, generate_synthetic
from agentrt.replay.run._driver import replay_run
from agentrt.replay.run._plan import build_plan
from agentrt.replay.run._sources import PoissonLoad, ScriptedSource, mode_switches
from agentrt.testing import run_virtual


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_log_gets_a_line_per_finished_request_with_count_elapsed_and_rate() -> None:
    out, clock = io.StringIO(), Clock()
    bar = ProgressBar(out, clock=clock)
    assert not bar.live  # a StringIO is no terminal
    bar.start("all @ 2/s", 4)
    for _ in range(2):
        clock.t += 5.0
        bar.advance()
    bar.finish()
    assert out.getvalue().splitlines() == [
        "all @ 2/s: 0/4 requests [00:00<?, ?req/s]",
        "all @ 2/s: 1/4 requests [00:05<00:15,  5.00s/req]",
        "all @ 2/s: 2/4 requests [00:10<00:10,  5.00s/req]",
        "all @ 2/s: 2/4 requests [00:10<00:10,  5.00s/req]",  # ended early: where it stopped
    ]


def test_a_quiet_log_still_gets_a_line_every_half_minute() -> None:
    out, clock = io.StringIO(), Clock()
    bar = ProgressBar(out, clock=clock)
    bar.start("baseline @ 1/s", 2)
    for _ in range(59):  # the driver ticks every second
        clock.t += 1.0
        bar.tick()
    assert len(out.getvalue().splitlines()) == 2  # the start, and one at 30 s
    assert "[00:30<?" in out.getvalue().splitlines()[1]


def test_a_terminal_gets_one_bar_redrawn_in_place() -> None:
    out = io.StringIO()
    bar = ProgressBar(out, live=True)
    bar.start("all @ 2/s", 3)
    for _ in range(3):
        bar.advance()
    bar.finish()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # redrawn with \r, one final line
    assert "3/3 requests" in text.rsplit("\r", 1)[-1]


def test_a_replay_reports_each_request_as_it_finishes() -> None:
    trace = generate_synthetic(SyntheticConfig(n_requests=3, token_scale=0.2))
    plan = build_plan(trace, ChatTokenizer(ByteCodec()))
    source = ScriptedSource(TimingModel(prefill_s_per_token=0.001, decode_step_s=0.01))
    out = io.StringIO()

    async def go() -> None:
        async with source.run_engine() as engine:
            bar = ProgressBar(out)
            await replay_run(plan, mode_switches("all"), PoissonLoad(2.0, 0), engine, progress=bar)

    run_virtual(go)
    counts = [line.split(": ", 1)[1].split(" ")[0] for line in out.getvalue().splitlines()]
    assert counts == ["0/3", "1/3", "2/3", "3/3"]
