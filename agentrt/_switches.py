"""``Switches``: the co-design optimizations, each of which can be turned off on its own."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Switches:
    """The co-design optimizations; all on by default, all off in the baseline.

    Attributes:
        token_log: append generated tokens verbatim (off: re-render each prompt from the
            message list through the chat template, as chat-endpoint frameworks do).
        stream_tools: start each tool the moment its call is parsed during decoding
            (off: wait for the whole response, then run the tools).
        split_prefill: while tools run, prefill the part of the next prompt that does
            not depend on their results.
        cache_hints: label token ranges with cache tiers and release the run at its end.
        run_priority: earlier agent runs are served first by the engine (off: FCFS).
    """

    token_log: bool = True
    stream_tools: bool = True
    split_prefill: bool = True
    cache_hints: bool = True
    run_priority: bool = True

    @classmethod
    def baseline(cls) -> Switches:
        return cls(False, False, False, False, False)

    @classmethod
    def only(cls, name: str) -> Switches:
        """Everything off but one switch (for ablations)."""
        if name not in {f.name for f in dataclasses.fields(cls)}:
            raise ValueError(f"unknown switch {name!r}")
        return dataclasses.replace(cls.baseline(), **{name: True})

    def label(self) -> str:
        names = [f.name for f in dataclasses.fields(self)]
        on = [n for n in names if getattr(self, n)]
        if len(on) == len(names):
            return "all"
        if len(on) == len(names) - 1 > 1:
            return "all-" + next(n for n in names if n not in on)
        return "+".join(on) if on else "baseline"
