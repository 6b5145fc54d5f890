"""``agentrt engine profile``'s probes, on an engine whose step times are known exactly.

``ScriptedEngine`` on virtual time takes ``step_overhead_s + prefill_s_per_token * p +
decode_s_per_seq * d`` per step, so the probes must see exactly those steps and the fit
must give back the same coefficients.
"""

from __future__ import annotations

import pytest

from agentrt.engine import ScriptedEngine, TimingModel
from agentrt.engine._twin_cost import Chunk, LinearStepCost, StepShape
from agentrt.engine._twin_fit import fit_steps
from agentrt.engine._twin_probe import EngineLimits, ProbeGrid, measure
from agentrt.testing import run_virtual

TIMING = TimingModel(
    prefill_s_per_token=0.001,
    decode_step_s=0.0,
    decode_s_per_seq=0.002,
    step_overhead_s=0.005,
    max_batched_tokens=4096,  # the scripted engine spends budget on cached tokens too
    max_num_seqs=16,
)
LIMITS = EngineLimits(
    block_size=16,
    capacity_tokens=100_000,
    max_num_batched_tokens=4096,
    max_num_seqs=16,
    max_model_len=8192,
)


def test_probes_measure_the_steps_the_engine_takes() -> None:
    async def main() -> list[tuple[StepShape, float]]:
        engine = ScriptedEngine(timing=TIMING)
        steps = await measure(engine, LIMITS, ProbeGrid.quick())
        await engine.aclose()
        return [(s.shape, s.seconds) for s in steps]

    steps = dict(run_virtual(main))
    # One new chunk of 256 tokens after a primed 256-token context (16-token blocks).
    assert steps[StepShape((Chunk(256, 256),), (), 1)] == pytest.approx(0.005 + 0.256)
    decode4 = next(s for s in steps if s.num_decodes == 4 and not s.prefills)
    assert steps[decode4] == pytest.approx(0.005 + 4 * 0.002)
    mixed = next(s for s in steps if s.prefills and s.decodes)
    assert mixed.prefill_tokens == 128 and mixed.num_decodes == 2
    assert steps[mixed] == pytest.approx(0.005 + 0.128 + 2 * 0.002)


def test_fitting_the_probes_recovers_the_engine() -> None:
    async def main() -> LinearStepCost:
        engine = ScriptedEngine(timing=TIMING)
        steps = await measure(engine, LIMITS, ProbeGrid())
        await engine.aclose()
        fit = fit_steps(steps)
        assert fit.r2 == pytest.approx(1.0) and fit.median_abs_rel_error < 1e-6
        return fit.cost

    cost = run_virtual(main)
    assert cost.step_s + cost.new_request_s == pytest.approx(0.005, abs=1e-6)
    assert cost.prefill_token_s == pytest.approx(0.001, rel=1e-4)
    assert cost.decode_seq_s == pytest.approx(0.002, rel=1e-4)
    assert cost.prefill_pair_s == pytest.approx(0, abs=1e-9)
    assert cost.decode_context_s == pytest.approx(0, abs=1e-9)
