"""Regenerate the small sample traces shipped in the repository's ``traces/`` folder.

Run ``python -m agentrt.replay.trace._samples [SHARED_TRACES_DIR] [OUT_DIR]``. WEKA and
Mooncake samples need the public workloads folder; the SWE sample is imported from a
hand-written example in the Sutradhara format (``traces/sources``), because the upstream
SWE-bench file carries no license and must not be redistributed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from ._import_mooncake import import_mooncake
from ._import_swe import import_swe
from ._import_weka import import_weka
from ._synthetic import SyntheticConfig, generate_synthetic
from ._trace import Trace, dump_trace

REPO_TRACES = Path(__file__).resolve().parents[2] / "traces"
SHARED_TRACES = Path("/work/shared/traces")

SAMPLE_TOKEN_SCALE = 1 / 64
SAMPLE_WEKA_FILE = "trace_0277.json.gz"  # one user turn that starts four sub-agents


def sample_builders(shared: Path, repo_traces: Path) -> dict[str, Callable[[], Trace]]:
    """How each sample file is made (name -> builder)."""
    return {
        "sample-websearch.jsonl": lambda: generate_synthetic(SyntheticConfig(n_requests=6)),
        "sample-weka.jsonl": lambda: import_weka(
            shared / "weka-claude-code" / SAMPLE_WEKA_FILE, token_scale=SAMPLE_TOKEN_SCALE
        ),
        "sample-mooncake.jsonl": lambda: import_mooncake(
            shared / "mooncake" / "conversation_trace.jsonl",
            token_scale=SAMPLE_TOKEN_SCALE,
            max_requests=8,
        ),
        "sample-swe.jsonl": lambda: import_swe(
            repo_traces / "sources" / "swe-style-example.json",
            license="Apache-2.0 (agentrt; hand-written example)",
        ),
    }


def write_samples(shared: Path = SHARED_TRACES, out: Path = REPO_TRACES) -> list[Path]:
    """Write every sample into ``out``; returns the paths written."""
    written = []
    for name, build in sample_builders(shared, REPO_TRACES).items():
        dump_trace(build(), out / name)
        written.append(out / name)
    return written


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:3]]
    for p in write_samples(*args):
        print(p)
