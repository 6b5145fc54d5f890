"""The state-machine driver every incremental tool-call parser runs on.

A parser is a set of ``_step_<state>`` methods over a text buffer. ``feed`` appends the
delta and steps until a step neither consumes text nor changes state (it is waiting for
more); ``finish`` lets the current state say what its leftovers were.
"""

from __future__ import annotations

from ._events import MalformedCall, ParsedCall, ParseEvent
from ._scan import JsonEndScanner


class StepParser:
    """Drives ``_step_<state>(out)`` methods; subclasses define the states.

    Invariants: a step either consumes buffered text, changes state, or waits, so
    ``feed`` always ends; ``index`` counts the calls emitted (malformed ones too).
    """

    _initial = "text"

    def __init__(self) -> None:
        self._state = self._initial
        self._buf = ""
        self._scan = JsonEndScanner()
        self._index = 0

    def feed(self, text: str) -> list[ParseEvent]:
        out: list[ParseEvent] = []
        self._buf += text
        while self._buf:
            before = (self._state, len(self._buf))
            getattr(self, f"_step_{self._state}")(out)
            if (self._state, len(self._buf)) == before:
                break  # waiting for more text
        return out

    def finish(self) -> list[ParseEvent]:
        out: list[ParseEvent] = []
        self._finish_state(out)
        self._buf, self._state = "", "text"
        return out

    def _finish_state(self, out: list[ParseEvent]) -> None:
        """Report what the current state still holds when the response ends."""
        raise NotImplementedError

    def _emit(self, out: list[ParseEvent], event: ParsedCall | MalformedCall) -> None:
        out.append(event)
        self._index += 1
