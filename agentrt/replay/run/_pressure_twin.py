"""The twin the cache-pressure workload is checked on: this CPU's engine, simulated.

A measured-profile twin with the pressure engine's settings (``PRESSURE_ENGINE``) and
step costs of the embedded engine's order on this machine (``docs/TWIN.md``: prefill
~1,000 tokens/s, a decode step ~12 ms plus ~3 ms per sequence). The KV hit rate is a
count, so the exact costs matter only through which requests overlap; the workload is
sized so that LRU and the tiers stay far apart across that range.
"""

from __future__ import annotations

from pathlib import Path

from agentrt.engine._twin_cost import LinearStepCost
from agentrt.engine._twin_profile import EngineDefaults, FitQuality, MeasuredProfile, ModelRef

from ..trace._pressure import PRESSURE_ENGINE

CPU_LIKE_COST = LinearStepCost(step_s=0.012, prefill_token_s=0.001, decode_seq_s=0.003)
"""Step time of the embedded engine's order here (not a fit: a stated assumption)."""


def pressure_profile(model_folder: str | Path, dtype: str = "float32") -> MeasuredProfile:
    """A profile whose twin runs ``model_folder``'s config with the pressure engine's
    settings and :data:`CPU_LIKE_COST` (write it with ``dump_profile`` for
    ``agentrt replay --engine twin --profile FILE``)."""
    e = PRESSURE_ENGINE
    return MeasuredProfile(
        name="pressure-cpu-like",
        model=ModelRef(folder=str(model_folder), dtype=dtype),
        engine=EngineDefaults(
            block_size=e.block_size,
            max_num_batched_tokens=e.max_model_len,
            max_num_seqs=e.max_num_seqs,
            max_model_len=e.max_model_len,
            num_blocks=e.num_blocks,
        ),
        coefficients=CPU_LIKE_COST.as_dict(),
        fit=FitQuality(samples=0, r2=1.0, median_abs_rel_error=0.0),
    )
