"""The replay driver: every trace request runs as a real agent run through the orchestrator.

For one mode (a ``Switches``) at one load, each request starts at its scheduled arrival as
``Agent(instructions=<system>, tools=<replay tools>, engine=<ReplayEngine>, switches=mode)``;
its turns run on one ``Session`` (the query, then each ``extra_input``), its LLM calls
emit their forced outputs and its tools sleep their recorded latency. Every co-design
switch therefore acts exactly as it does in production. A run starts from a cold prefix
cache: a fresh ``ScriptedEngine``, or the one shared engine after ``reset_prefix_cache()``.

FTR is the request's *scheduled* arrival to the first token of its last LLM call, so a
driver or engine that falls behind shows up as latency.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import anyio

from agentrt._agent import Agent, Switches
from agentrt.engine import Engine, SamplingOptions
from agentrt.engine._clock import now
from agentrt.tools import LatencyTracker, Tool

from ..report._records import RequestRecord, ToolRecord
from ..report._results import ReplayRun
from ..report._summary import summarize
from ._plan import ReplayPlan, RequestPlan
from ._replay_engine import ReplayEngine
from ._replay_tools import replay_tools
from ._sources import EngineSource, Load, PoissonLoad, ReplayMode

_M = TypeVar("_M")


class Progress(Protocol):
    """What the driver reports while a run goes (see ``agentrt.cli._progress.ProgressBar``)."""

    def start(self, label: str, total: int) -> None: ...

    def advance(self) -> None: ...

    def tick(self) -> None: ...

    def finish(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Token deadlines of the fluidity index (None: not computed)."""

    ttft_s: float | None = None
    tbt_s: float | None = None


async def replay_run(
    plan: ReplayPlan,
    mode: Switches | ReplayMode,
    load: Load,
    engine: Engine,
    *,
    deadlines: Deadlines = Deadlines(),
    progress: Progress | None = None,
    timeout_s: float | None = None,
) -> ReplayRun:
    """Replay every request of ``plan`` once in ``mode`` at ``load`` on ``engine``.

    Args:
        timeout_s: limit for the whole run; requests still running then are cancelled
            and recorded as failed (None: no limit).

    Returns:
        The run's records and summary; ``config`` holds the mode's switches, the load and
        the engine's prefix-cache counters over the run.
    """
    offered = load.offered(plan)  # raises before any work when the load is meaningless
    mode = mode if isinstance(mode, ReplayMode) else ReplayMode.of(mode)
    run = _Run(plan, mode, engine)
    arrivals = load.arrivals(plan)
    before = await _cache_counters(engine)
    if progress is not None:
        progress.start(f"{mode.name} @ {_load_label(load)}", len(plan.requests))
    t0 = now()
    records: list[RequestRecord | None] = [None] * len(plan.requests)

    async def one(i: int) -> None:
        await run.request(plan.requests[i], t0 + arrivals[i], records, i)
        if progress is not None:
            progress.advance()

    try:
        # A stuck engine must not hang the benchmark: past the limit, what is still
        # running is cancelled and recorded as failed.
        with anyio.move_on_after(math.inf if timeout_s is None else timeout_s):
            async with anyio.create_task_group() as outer:
                if progress is not None:
                    outer.start_soon(_tick, progress)
                async with anyio.create_task_group() as tg:
                    for i in range(len(plan.requests)):
                        tg.start_soon(one, i)
                outer.cancel_scope.cancel()
    finally:
        if progress is not None:
            progress.finish()
    done = [
        r
        if r is not None
        else RequestRecord(
            plan.requests[i].request_id,
            mode.name,
            t0 + arrivals[i],
            (),
            error="not started: the run timed out",
        )
        for i, r in enumerate(records)
    ]
    after = await _cache_counters(engine)
    summary = summarize(
        done,
        block_size=engine.info.block_size,
        ttft_deadline_s=deadlines.ttft_s,
        tbt_deadline_s=deadlines.tbt_s,
    )
    config: dict[str, Any] = {
        "switches": dataclasses.asdict(mode.switches),
        "load": dataclasses.asdict(load),
        "wall_s": now() - t0,
    }
    if before is not None and after is not None:
        config["engine_prefix_cache"] = {
            "queries": after[0] - before[0],
            "hits": after[1] - before[1],
        }
    facts = getattr(engine, "run_facts", None)  # engines with more to say (twin replicas)
    if callable(facts):
        config["engine_facts"] = facts()
    return ReplayRun(mode.name, offered, summary, tuple(done), config)


async def replay_all(
    plan: ReplayPlan,
    modes: Sequence[Switches | ReplayMode],
    loads: Sequence[Load],
    source: EngineSource,
    *,
    deadlines: Deadlines = Deadlines(),
    progress: Progress | None = None,
    timeout_s: float | None = None,
    repeats: int = 1,
) -> list[ReplayRun]:
    """Every mode at every load, ``repeats`` times, each run on a cold engine from ``source``.

    Loads are outermost, then repeats, then modes: the modes of one repeat run back to
    back on the same arrival draw (:func:`redrawn`), in an order that moves every mode
    to another place in each repeat (:func:`mode_order`), so neither slow drift of a
    shared machine nor a slow stretch at a fixed place in the sequence lands on one mode.

    Raises:
        ValueError: ``repeats`` is below 1.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    runs = []
    for load in loads:
        for k in range(repeats):
            for mode in mode_order(modes, k, repeats):
                async with source.run_engine() as engine:
                    run = await replay_run(
                        plan,
                        mode,
                        redrawn(load, k),
                        engine,
                        deadlines=deadlines,
                        progress=progress,
                        timeout_s=timeout_s,
                    )
                    runs.append(dataclasses.replace(run, repeat=k))
    return runs


def mode_order(modes: Sequence[_M], repeat: int, repeats: int) -> list[_M]:
    """The order of the modes in repeat ``repeat`` of ``repeats``: the given order rotated
    by ``repeat * len(modes) // repeats`` places. The first repeat keeps the given order,
    and over the repeats each mode's places spread evenly across the sequence.

    A fixed order was misleading: at 4 req/s on the 2-core CPU, the modes in the middle of
    each repeat ran 5-8% slower than the baseline and its A/A control at the two ends, in
    every draw. With the order changed, the same switches measured 1.01-1.02x.
    """
    shift = repeat * len(modes) // repeats if repeats > 0 else 0
    return [*modes[shift:], *modes[:shift]]


def redrawn(load: Load, repeat: int) -> Load:
    """The load of repeat ``repeat``: Poisson arrivals drawn with seed ``seed + repeat``;
    recorded arrivals stay as recorded (their repeats measure engine noise only)."""
    if isinstance(load, PoissonLoad):
        return dataclasses.replace(load, seed=load.seed + repeat)
    return load


class _Run:
    """One (mode, load) run: the proxy engine, the tools and the agent per request."""

    def __init__(self, plan: ReplayPlan, mode: ReplayMode, engine: Engine) -> None:
        self.plan = plan
        self.mode = mode
        self.proxy = ReplayEngine(engine)
        self.tools: list[Tool] = replay_tools(plan.replies, plan.tool_names)
        # Per run, so what one run learns of tool latencies cannot help the next.
        self.latency = LatencyTracker()
        self.sampling = SamplingOptions(max_tokens=plan.max_output_tokens)

    async def request(
        self, req: RequestPlan, arrival_t: float, sink: list[RequestRecord | None], index: int
    ) -> None:
        """Run one request and put its record in ``sink[index]`` (even when cancelled)."""
        await anyio.sleep(max(0.0, arrival_t - now()))
        agent = Agent(
            instructions=req.system,
            tools=self.tools,
            engine=self.proxy,
            name="replay",
            switches=self.mode.switches,
            constrain_calls=False,
            max_iterations=req.n_calls,
            sampling=self.sampling,
            tool_timeout_s=None,
        )
        session = agent.session()
        session.executor.latency = self.latency
        self.proxy.register(session.session_id, [o.ids for o in req.outputs])
        tools: list[ToolRecord] = []
        traces: list[str] = []
        error: str | None = None
        try:
            for k, turn in enumerate(req.turns):
                if turn.gap_s > 0:
                    await anyio.sleep(turn.gap_s)
                result = await session.run(turn.message)
                traces += [result.trace_id] if result.trace_id else []
                tools += [ToolRecord(s.name, s.start_t, s.end_t) for s in result.tool_spans]
                if result.status != "completed" or len(result.iterations) != turn.n_calls:
                    error = (
                        f"turn {k}: {result.status} after {len(result.iterations)} of "
                        f"{turn.n_calls} LLM calls" + (f" ({result.error})" if result.error else "")
                    )
                    break
        except Exception as exc:  # one request failing must not end the run
            error = describe_error(exc)
        except anyio.get_cancelled_exc_class():
            error = "cancelled: the run timed out"
            raise
        finally:
            calls = self.proxy.take(session.session_id)
            finals = [c for c in calls if c.kind == "generate"]
            sink[index] = RequestRecord(
                request_id=req.request_id,
                mode=self.mode.name,
                arrival_t=arrival_t,
                calls=tuple(c.record() for c in calls),
                tools=tuple(tools),
                final_token_times=tuple(finals[-1].token_times) if finals and not error else (),
                error=error,
                run_id=session.run_id,
                trace_ids=tuple(traces),
            )


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of the exception, or of the leaves of an exception group."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe_error(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


async def _tick(progress: Progress) -> None:
    while True:
        await anyio.sleep(1.0)
        progress.tick()


async def _cache_counters(engine: Engine) -> tuple[int, int] | None:
    try:
        s = await engine.stats()
    except Exception:  # a remote engine may not report them; the run does not need them
        return None
    return s.prefix_cache_queries, s.prefix_cache_hits


def _load_label(load: Load) -> str:
    if isinstance(load, PoissonLoad):
        return f"{load.rate_per_s:g}/s"
    return f"x{load.time_scale:g} recorded"


def default_ftr_target(
    runs: Sequence[ReplayRun], baseline: str = "baseline", *, factor: float = 2.0
) -> float:
    """``factor`` times the baseline's median FTR at its lowest load (the first mode's if
    there is no baseline).

    The lowest load is closest to an unloaded engine, so a small multiple of its median
    is a target every mode meets when lightly loaded and the baseline misses once queues
    build.

    Raises:
        ValueError: no run finished a request.
    """
    pool = [r for r in runs if r.mode == baseline] or [r for r in runs if r.mode == runs[0].mode]
    for run in sorted(pool, key=lambda r: r.load):
        if run.summary.ftr_p50_s is not None and math.isfinite(run.summary.ftr_p50_s):
            return factor * run.summary.ftr_p50_s
    raise ValueError("no run finished a request: cannot derive an FTR target")
