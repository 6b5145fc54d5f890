"""A trace of the real engine's steps: what vLLM's scheduler put in each step, and when.

The twin prices each step with a cost model fitted to probes. Whether that model holds
for the steps a real workload makes (several runs decoding while others prefill) can
only be checked against those steps. When ``AGENTRT_STEP_TRACE`` names a file, the
tier scheduler appends one JSON line per step to it (in the engine-core process)::

    {"t0": schedule start, "t1": schedule end, "t2": outputs processed,
     "shape": StepShape.to_json()}

``t2 - t1`` is the forward pass (with sampling and the grammar bitmask); the next line's
``t0`` minus this one's ``t0`` is the whole engine cycle when the engine is busy.
``load_steps`` reads a file back; ``agentrt engine profile`` fits its cost profile to the
steps its probes made, and ``agentrt engine check-trace`` prices any trace with a profile.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ._twin_cost import Chunk, StepShape

TRACE_ENV = "AGENTRT_STEP_TRACE"
"""Environment variable naming the JSON-lines file the engine core appends steps to."""


def scheduled_shape(output: Any, requests: Mapping[str, Any]) -> StepShape:
    """The shape of the step vLLM's scheduler just built (``output``: a ``SchedulerOutput``).

    Must run right after ``schedule()``: the scheduler has already advanced each
    request's ``num_computed_tokens`` past this step's tokens, so a request's context is
    ``num_computed_tokens`` minus what it runs now. One token past the prompt is a decode;
    anything else (a prompt chunk, a recomputed preempted sequence) is a prefill chunk.
    """
    prefills: list[Chunk] = []
    decodes: list[int] = []
    for rid, n in output.num_scheduled_tokens.items():
        req = requests[rid]
        context = req.num_computed_tokens - n
        if n == 1 and context >= req.num_prompt_tokens:
            decodes.append(context)
        else:
            prefills.append(Chunk(n, context))
    return StepShape(tuple(prefills), tuple(decodes), len(output.scheduled_new_reqs))


@dataclass(frozen=True, slots=True)
class TracedStep:
    """One real step: its shape and its timestamps (``time.perf_counter`` seconds)."""

    shape: StepShape
    t0: float
    t1: float
    t2: float

    @property
    def busy_s(self) -> float:
        """Scheduling, forward pass and output processing: what the cost model prices."""
        return self.t2 - self.t0


class StepRecorder:
    """Appends steps to the trace file (one open file per engine core, line-buffered).

    Invariant: a line is written only for a step that both started and finished, so a
    trace never holds a half step, even when the engine dies between the two.
    """

    def __init__(self, path: str) -> None:
        self._file: IO[str] = open(path, "a", buffering=1)  # noqa: SIM115 - lives with the engine
        self._open: tuple[StepShape, float, float] | None = None

    @classmethod
    def from_env(cls) -> StepRecorder | None:
        path = os.environ.get(TRACE_ENV)
        return cls(path) if path else None

    def scheduled(self, shape: StepShape, t0: float) -> None:
        self._open = None if shape.is_empty else (shape, t0, time.perf_counter())

    def finished(self) -> None:
        if self._open is None:
            return
        shape, t0, t1 = self._open
        self._open = None
        line = {"t0": t0, "t1": t1, "t2": time.perf_counter(), "shape": shape.to_json()}
        self._file.write(json.dumps(line) + "\n")


def load_steps(path: Path) -> list[TracedStep]:
    """Every step of the trace file ``path``, in order.

    Raises:
        ValueError: a line that is not a step (naming the line number).
    """
    steps: list[TracedStep] = []
    with path.open() as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                shape = StepShape.from_json(d["shape"])
                steps.append(TracedStep(shape, float(d["t0"]), float(d["t1"]), float(d["t2"])))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{i}: not a traced step ({e})") from e
    return steps
