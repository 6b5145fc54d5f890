"""The synthetic workload generator and arrival processes: determinism and stated shape."""

from __future__ import annotations

import statistics

import pytest

from agentrt.replay import (
    SyntheticConfig,
    TokenContent,
    assign_arrivals,
    generate_synthetic,
    poisson_arrivals,
    recorded_arrivals,
    with_poisson_arrivals,
)


def _tokens(c: object) -> int:
    assert isinstance(c, TokenContent)
    return c.tokens


def test_same_seed_gives_an_identical_trace() -> None:
    cfg = SyntheticConfig(n_requests=12, seed=7)
    assert generate_synthetic(cfg) == generate_synthetic(cfg)


def test_different_seed_gives_a_different_trace() -> None:
    a = generate_synthetic(SyntheticConfig(n_requests=12, seed=1))
    b = generate_synthetic(SyntheticConfig(n_requests=12, seed=2))
    assert a.requests != b.requests


def test_default_shape_is_a_web_search_agent() -> None:
    trace = generate_synthetic(SyntheticConfig(n_requests=300))
    assert trace.header.hash_block_tokens == 16 and trace.header.token_scale == 1.0
    systems = {r.system for r in trace}
    assert len(systems) == 1 and {r.group for r in trace} == {"websearch"}
    (system,) = systems
    assert _tokens(system) == 1000 and isinstance(system, TokenContent)
    assert system.hash_ids == tuple(range(63))
    tool_calls, parallel = 0, 0
    for r in trace:
        assert 30 <= _tokens(r.query) <= 120 and 2 <= len(r.calls) <= 6
        assert 50 <= _tokens(r.calls[-1].output) <= 200
        for call in r.calls[:-1]:
            out = _tokens(call.output)
            assert 20 <= out <= 80 and 1 <= len(call.tool_calls) <= 2
            assert call.tool_calls[-1].at == out  # the last call closes the output
            assert all(150 <= _tokens(t.result) <= 600 for t in call.tool_calls)
            assert all(0.02 <= t.latency_s <= 10.0 for t in call.tool_calls)
            tool_calls += 1
            parallel += len(call.tool_calls) == 2
    assert 0.5 < parallel / tool_calls < 0.7  # P(two parallel searches) = 0.6
    latencies = [t.latency_s for r in trace for c in r.calls for t in c.tool_calls]
    assert 0.35 < statistics.median(latencies) < 0.7  # lognormal median 0.5 s


def test_parallel_calls_complete_at_their_stated_positions() -> None:
    cfg = SyntheticConfig(n_requests=1, p_parallel=1.0, llm_calls=(2, 2), output_tokens=(50, 50))
    (call, _) = generate_synthetic(cfg).requests[0].calls
    # preamble floor(50 * 0.2) = 10, then two calls of 20 tokens each
    assert [t.at for t in call.tool_calls] == [30, 50]


def test_scaling_shrinks_every_count_and_keeps_the_draws() -> None:
    full = generate_synthetic(SyntheticConfig(n_requests=5, seed=3))
    small = generate_synthetic(SyntheticConfig(n_requests=5, seed=3, token_scale=0.25))
    assert small.header.token_scale == 0.25 and small.header.hash_block_tokens == 4
    for a, b in zip(full, small, strict=True):
        assert _tokens(b.query) == max(1, int(_tokens(a.query) * 0.25 + 0.5))
        assert [len(c.tool_calls) for c in a.calls] == [len(c.tool_calls) for c in b.calls]
        assert [t.latency_s for c in a.calls for t in c.tool_calls] == [
            t.latency_s for c in b.calls for t in c.tool_calls
        ]


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ValueError, match="llm_calls"):
        SyntheticConfig(llm_calls=(3, 2))
    with pytest.raises(ValueError, match="p_parallel"):
        SyntheticConfig(p_parallel=1.5)


def test_poisson_arrivals_are_deterministic_per_seed() -> None:
    a = poisson_arrivals(50, 2.0, seed=11)
    assert a == poisson_arrivals(50, 2.0, seed=11)
    assert a != poisson_arrivals(50, 2.0, seed=12)
    assert a[0] == 0.0 and a == sorted(a) and len(a) == 50


def test_poisson_arrivals_follow_the_rate() -> None:
    a = poisson_arrivals(4001, 4.0, seed=0)
    assert a[-1] / 4000 == pytest.approx(0.25, rel=0.1)  # mean gap 1 / rate
    assert poisson_arrivals(0, 1.0, seed=0) == []
    with pytest.raises(ValueError, match="rate_per_s"):
        poisson_arrivals(3, 0.0, seed=0)


def test_recorded_arrivals_scale_time() -> None:
    trace = generate_synthetic(SyntheticConfig(n_requests=4))
    assert recorded_arrivals(trace, 0.5) == [r.arrival_s * 0.5 for r in trace]


def test_assigning_arrivals_returns_a_new_trace() -> None:
    trace = generate_synthetic(SyntheticConfig(n_requests=3))
    moved = assign_arrivals(trace, [0.0, 1.0, 2.5])
    assert [r.arrival_s for r in moved] == [0.0, 1.0, 2.5]
    assert [r.arrival_s for r in trace] != [0.0, 1.0, 2.5]
    assert [r.calls for r in moved] == [r.calls for r in trace]
    again = with_poisson_arrivals(trace, 3.0, seed=5)
    assert [r.arrival_s for r in again] == poisson_arrivals(3, 3.0, seed=5)
    with pytest.raises(ValueError, match="3 requests"):
        assign_arrivals(trace, [0.0])
    with pytest.raises(ValueError, match=r"arrivals\[1\]"):
        assign_arrivals(trace, [0.0, -1.0, 2.0])
