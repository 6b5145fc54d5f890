"""What a replay run varies: the mode (a ``Switches``), the load (when requests arrive) and
the engine it runs on (a fresh ``ScriptedEngine``, or one shared engine reset per run)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from agentrt._agent import Switches
from agentrt.engine import (
    ByteCodec,
    ChatTokenizer,
    Engine,
    EngineError,
    ScriptedEngine,
    TimingModel,
)

from ..report._results import CONTROL_MODE
from ..trace._arrivals import poisson_arrivals
from ._plan import ReplayPlan

SWITCH_NAMES = ("token_log", "stream_tools", "split_prefill", "cache_hints", "run_priority")
MODE_NAMES = ("baseline", *SWITCH_NAMES, "all")


@dataclass(frozen=True, slots=True)
class ReplayMode:
    """A mode's name (what its runs are labelled) and its switches.

    Invariant: ``name == switches.label()`` except for the control, which differs from the
    baseline in name only.
    """

    name: str
    switches: Switches

    @classmethod
    def of(cls, switches: Switches) -> ReplayMode:
        return cls(switches.label(), switches)


def replay_mode(name: str) -> ReplayMode:
    """:func:`mode_switches` under its label, or the A/A control (:data:`CONTROL_MODE`).

    Raises:
        ValueError: an unknown mode name.
    """
    if name == CONTROL_MODE:
        return ReplayMode(CONTROL_MODE, Switches.baseline())
    try:
        return ReplayMode.of(mode_switches(name))
    except ValueError as e:
        raise ValueError(f"{e}, or {CONTROL_MODE} (the A/A control)") from None


def mode_switches(name: str) -> Switches:
    """``baseline``, ``all``, one switch alone (``token_log``, ``stream_tools``...), or all but
    one (``all-run_priority``: the leave-one-out ablation).

    Raises:
        ValueError: an unknown mode name.
    """
    if name == "baseline":
        return Switches.baseline()
    if name == "all":
        return Switches()
    left_out = name.removeprefix("all-")
    if left_out != name and left_out in SWITCH_NAMES:
        return dataclasses.replace(Switches(), **{left_out: False})
    if name not in SWITCH_NAMES:
        raise ValueError(
            f"unknown mode {name!r}: use one of {', '.join(MODE_NAMES)}, or all-<switch>"
        )
    return Switches.only(name)


@dataclass(frozen=True, slots=True)
class PoissonLoad:
    """Poisson arrivals at ``rate_per_s`` agent requests per second (seeded)."""

    rate_per_s: float
    seed: int = 0
    kind: Literal["poisson"] = "poisson"

    def arrivals(self, plan: ReplayPlan) -> list[float]:
        return poisson_arrivals(len(plan.requests), self.rate_per_s, self.seed)

    def offered(self, plan: ReplayPlan) -> float:
        return self.rate_per_s


@dataclass(frozen=True, slots=True)
class RecordedLoad:
    """The trace's own arrival times multiplied by ``time_scale`` (0.5: twice as fast),
    shifted so the first request arrives at 0."""

    time_scale: float = 1.0
    kind: Literal["recorded"] = "recorded"

    def arrivals(self, plan: ReplayPlan) -> list[float]:
        first = min((r.arrival_s for r in plan.requests), default=0.0)
        return [(r.arrival_s - first) * self.time_scale for r in plan.requests]

    def offered(self, plan: ReplayPlan) -> float:
        """Mean arrival rate: requests after the first over the span of arrivals.

        Raises:
            ValueError: all requests arrive at once (no rate to speak of).
        """
        times = self.arrivals(plan)
        span = max(times, default=0.0) - min(times, default=0.0)
        if len(times) < 2 or span <= 0:
            raise ValueError("recorded arrivals span no time: assign Poisson rates instead")
        return (len(times) - 1) / span


Load = PoissonLoad | RecordedLoad


class EngineSource(Protocol):
    """Where runs get their engine: one with a cold prefix cache per run."""

    @property
    def tokenizer(self) -> ChatTokenizer: ...

    def describe(self) -> dict[str, Any]: ...

    def run_engine(self) -> AbstractAsyncContextManager[Engine]: ...


class ScriptedSource:
    """A fresh ``ScriptedEngine`` (byte tokenizer, modelled timing) for every run."""

    def __init__(
        self,
        timing: TimingModel | None = None,
        *,
        block_size: int = 16,
        num_blocks: int | None = None,
        max_model_len: int = 32768,
    ) -> None:
        self.timing = timing or TimingModel()
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.max_model_len = max_model_len
        self._tokenizer = ChatTokenizer(ByteCodec())

    @property
    def tokenizer(self) -> ChatTokenizer:
        return self._tokenizer

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "scripted",
            "timing": dataclasses.asdict(self.timing),
            "block_size": self.block_size,
            "num_blocks": self.num_blocks,
            "max_model_len": self.max_model_len,
        }

    @asynccontextmanager
    async def run_engine(self) -> AsyncIterator[Engine]:
        engine = ScriptedEngine(
            timing=self.timing,
            tokenizer=self._tokenizer,
            block_size=self.block_size,
            num_blocks=self.num_blocks,
            max_model_len=self.max_model_len,
        )
        try:
            yield engine
        finally:
            try:
                await engine.aclose()
            except Exception as exc:  # its step loop died mid-run: the run is void
                raise EngineError(
                    f"the scripted engine failed during the run ({type(exc).__name__}: {exc}); "
                    "with a bounded cache, give it enough blocks for every running request"
                ) from exc


class SharedSource:
    """One engine for every run, its prefix cache reset before each (when it can be)."""

    def __init__(self, engine: Engine, description: Mapping[str, Any] | None = None) -> None:
        self.engine = engine
        self.description = dict(description or {})
        # Not in the Engine protocol: in-process vLLM, HTTP and scripted engines have it.
        self.cold_runs = hasattr(engine, "reset_prefix_cache")
        self.warm_because: str | None = None if self.cold_runs else "the engine cannot reset"

    @property
    def tokenizer(self) -> ChatTokenizer:
        return self.engine.tokenizer

    def describe(self) -> dict[str, Any]:
        info = self.engine.info
        return {
            **self.description,
            "backend": info.backend,
            "model": info.model,
            "block_size": info.block_size,
            "max_model_len": info.max_model_len,
            "cold_cache_per_run": self.cold_runs,
            **({"warm_because": self.warm_because} if self.warm_because else {}),
        }

    @asynccontextmanager
    async def run_engine(self) -> AsyncIterator[Engine]:
        reset = getattr(self.engine, "reset_prefix_cache", None) if self.cold_runs else None
        if reset is not None:
            try:
                await reset()
            except EngineError as exc:  # e.g. a server not in dev mode: say so, go on warm
                self.cold_runs, self.warm_because = False, str(exc)
        yield self.engine
