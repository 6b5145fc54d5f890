"""Cutting a response at the first call it repeats.

Small models often write the same call twice (or more) when the grammar lets them open
another one. A repeated call never adds anything a client can use, so the response ends
at the repeat: ``RepeatGuard`` wraps any format's parser, passes events through until a
call closes that equals an earlier call of the same response (same name, arguments equal
as JSON), and from then on drops everything. Its caller sees ``repeat`` set right after
the ``feed`` that closed the repeat and stops decoding there (aborts the request), so the
repeated call's tokens are paid for once and nothing after them is.
"""

from __future__ import annotations

import json

from .._types import GenerateRequest, RequestId, RequestStats
from ._events import ParsedCall, ParseEvent, ToolCallParser


def call_key(call: ParsedCall) -> tuple[str, str]:
    """What makes two calls the same: the name and the arguments as canonical JSON
    (key order and spacing do not matter; ``1`` and ``1.0`` are different values)."""
    return call.name, json.dumps(call.arguments, sort_keys=True, ensure_ascii=False)


class RepeatGuard:
    """A ``ToolCallParser`` that ends the response at the first repeated call.

    Invariants: the events it yields are the wrapped parser's events up to (not
    including) the first repeated call, unchanged; after ``repeat`` is set, ``feed`` and
    ``finish`` yield nothing. Calls with different arguments are never repeats, whatever
    their number.

    Args:
        inner: a fresh parser of the response's tool format.
    """

    __slots__ = ("_inner", "_seen", "repeat")

    def __init__(self, inner: ToolCallParser) -> None:
        self._inner = inner
        self._seen: set[tuple[str, str]] = set()
        self.repeat: ParsedCall | None = None

    def feed(self, text: str) -> list[ParseEvent]:
        if self.repeat is not None:
            return []
        return self._screen(self._inner.feed(text))

    def finish(self) -> list[ParseEvent]:
        if self.repeat is not None:
            return []
        return self._screen(self._inner.finish())

    def _screen(self, events: list[ParseEvent]) -> list[ParseEvent]:
        for i, ev in enumerate(events):
            if not isinstance(ev, ParsedCall):
                continue
            key = call_key(ev)
            if key in self._seen:
                self.repeat = ev
                return events[:i]
            self._seen.add(key)
        return events


def stats_at_cut(
    request: GenerateRequest,
    *,
    output_tokens: int,
    arrival_t: float,
    first_token_t: float | None,
    t: float,
) -> RequestStats:
    """The statistics of a request its caller stopped at a repeated call.

    Closing the stream aborts the engine request before it sends its own statistics, so
    they are rebuilt from what the caller saw: the response ended normally ("stop", its
    calls are complete), ``output_tokens`` counts the tokens received up to the cut. The
    cached-token count is not known then and is reported as 0.
    """
    rid = request.request_id or RequestId("cut-at-repeat")
    return RequestStats(
        rid, len(request.prompt), 0, output_tokens, "stop", arrival_t, first_token_t, t
    )
