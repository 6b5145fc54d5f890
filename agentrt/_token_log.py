"""The append-only token log of an agent run: the prompt as labelled token segments.

Generated tokens are appended verbatim and nothing is ever re-rendered, so the prompt
of iteration k+1 extends the prompt of iteration k exactly and the engine's prefix
cache always matches it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from agentrt.engine import CacheHint, Tier

SegmentRole = Literal["system", "user", "assistant", "tool", "generation_prompt", "turn_close"]


@dataclass(frozen=True, slots=True)
class Segment:
    """Tokens ``[start, end)`` of the log, what they are (role) and how to cache them (tier)."""

    role: SegmentRole
    tier: Tier
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


class TokenLog:
    """An append-only list of token segments.

    Invariants: segments are contiguous and cover ``tokens`` exactly
    (``segments[0].start == 0``, ``segments[i].end == segments[i+1].start``,
    ``segments[-1].end == len(tokens)``); nothing is ever removed or changed.

        tokens   |sys sys sys|usr usr|<gen>|out out out|\\n|tool tool|<gen>|...
        segments [  SYSTEM   ][USER_Q][DEF ][ DEFAULT   ][ ][TOOL_OUT ][DEF ]
    """

    __slots__ = ("_segments", "_tokens")

    def __init__(self) -> None:
        self._tokens: list[int] = []
        self._segments: list[Segment] = []

    def append(self, tokens: Iterable[int], role: SegmentRole, tier: Tier) -> Segment | None:
        """Append one segment; an empty one is not recorded."""
        start = len(self._tokens)
        self._tokens.extend(tokens)
        if len(self._tokens) == start:
            return None
        seg = Segment(role, tier, start, len(self._tokens))
        self._segments.append(seg)
        return seg

    @property
    def tokens(self) -> tuple[int, ...]:
        return tuple(self._tokens)

    @property
    def segments(self) -> Sequence[Segment]:
        return tuple(self._segments)

    def __len__(self) -> int:
        return len(self._tokens)

    def hints(self) -> tuple[CacheHint, ...]:
        """Cache hints for the whole log, adjacent segments of one tier merged (split A's
        SPLIT_PENDING marking is ``agentrt._conversation.pending_split``'s)."""
        merged: list[tuple[int, int, Tier]] = []
        for s in self._segments:
            if merged and merged[-1][2] == s.tier and merged[-1][1] == s.start:
                merged[-1] = (merged[-1][0], s.end, s.tier)
            else:
                merged.append((s.start, s.end, s.tier))
        return tuple(CacheHint(a, b, t) for a, b, t in merged)

    def checkpoint(self) -> int:
        """A mark to roll back to (the number of segments so far)."""
        return len(self._segments)

    def rollback(self, mark: int) -> None:
        """Forget the segments appended after ``mark``: a turn that failed never happened.

        This is the only way anything leaves the log; it is never used within a turn.
        """
        if mark < len(self._segments):
            del self._tokens[self._segments[mark].start :]
            del self._segments[mark:]

    def check_integrity(self) -> None:
        """Assert the contiguity invariant (tests and debug runs call this)."""
        pos = 0
        for s in self._segments:
            assert s.start == pos, f"segment {s} does not start where the previous ended ({pos})"
            assert s.end > s.start, f"empty segment {s} recorded"
            pos = s.end
        assert pos == len(self._tokens), f"segments cover {pos} of {len(self._tokens)} tokens"
