"""LatencyTracker: learned means, and the fallbacks to a tool's static value and a default."""

from __future__ import annotations

import math

import pytest

from agentrt.tools import LatencyTracker, Tool


def _tool(name: str, expected: float | None) -> Tool:
    return Tool(
        name=name,
        description="",
        parameters={"type": "object"},
        fn=lambda: None,
        expected_latency_s=expected,
    )


def test_an_unmeasured_tool_falls_back_to_its_static_value_then_the_default() -> None:
    tracker = LatencyTracker(default_s=2.5)
    assert tracker.expected(_tool("search", 0.8)) == 0.8
    assert tracker.expected(_tool("search", None)) == 2.5
    assert tracker.expected("search") == 2.5


def test_the_first_sample_is_the_mean_and_later_ones_are_blended() -> None:
    tracker = LatencyTracker(alpha=0.5)
    tracker.record("search", 4.0)
    assert tracker.expected("search") == 4.0
    tracker.record("search", 2.0)
    assert tracker.expected("search") == 3.0
    tracker.record("search", 1.0)
    assert tracker.expected("search") == 2.0
    assert tracker.samples("search") == 3
    tracker.check_integrity()


def test_a_learned_mean_overrides_the_static_value() -> None:
    tracker = LatencyTracker()
    tool = _tool("search", 10.0)
    tracker.record("search", 0.5)
    assert tracker.expected(tool) == 0.5


def test_tools_are_tracked_separately() -> None:
    tracker = LatencyTracker()
    tracker.record("a", 1.0)
    tracker.record("b", 3.0)
    assert tracker.snapshot() == {"a": 1.0, "b": 3.0}
    assert tracker.samples("c") == 0


def test_a_batch_of_concurrent_calls_takes_as_long_as_its_slowest() -> None:
    tracker = LatencyTracker(default_s=1.0)
    tracker.record("slow", 4.0)
    assert tracker.expected_batch(["slow", _tool("fast", 0.1), "unknown"]) == 4.0
    assert tracker.expected_batch([]) == 0.0


@pytest.mark.parametrize("seconds", [-1.0, math.inf, math.nan])
def test_invalid_samples_are_rejected(seconds: float) -> None:
    tracker = LatencyTracker()
    with pytest.raises(ValueError, match="seconds must be a finite number >= 0"):
        tracker.record("a", seconds)
    tracker.check_integrity()


@pytest.mark.parametrize(("alpha", "default_s"), [(0.0, 1.0), (1.5, 1.0), (0.5, -1.0)])
def test_invalid_settings_are_rejected(alpha: float, default_s: float) -> None:
    with pytest.raises(ValueError):
        LatencyTracker(alpha=alpha, default_s=default_s)
