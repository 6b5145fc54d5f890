"""Replay the cache-pressure workload on the twin (default) or the embedded engine.

    python scripts/pressure_replay.py twin  [--seed N] [--out DIR]
    flock /work/wt/engine.lock python scripts/pressure_replay.py real [--out DIR]

Both run modes baseline, cache_hints and all at 1 request/s with the pressure engine's
settings (``agentrt.replay.trace._pressure.PRESSURE_ENGINE``) and print the report,
whose "KV hit" and "KV max" columns are the point: LRU (baseline) under 0.8x the
theoretical maximum, the tiers at 0.95x or more. The twin is simulated (step costs of
this CPU's order, ``_pressure_twin.CPU_LIKE_COST``); the real engine needs the lock.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from agentrt.cli import main as cli
from agentrt.engine import default_model_dir
from agentrt.engine._twin_profile import dump_profile
from agentrt.replay.run._pressure_twin import pressure_profile
from agentrt.replay.trace._pressure import PRESSURE_ENGINE, PRESSURE_RATE


def replay_args(engine: list[str], seed: int, out: Path) -> list[str]:
    """``agentrt replay`` arguments for the workload on ``engine`` (which names the engine
    and its cache: a twin profile carries block size and blocks, the embedded engine
    takes ``--block-size`` and ``--kv-cache-bytes``)."""
    e = PRESSURE_ENGINE
    return [
        "replay", "--pressure", "--seed", str(seed), "--rates", f"{PRESSURE_RATE:g}",
        "--modes", "baseline,cache_hints,all", "--max-num-seqs", str(e.max_num_seqs),
        "--max-model-len", str(e.max_model_len), "--no-plots", "--out", str(out), *engine,
    ]  # fmt: skip


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("engine", choices=["twin", "real"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    out = a.out or Path(f"pressure-{a.engine}")
    if a.engine == "real":
        e = PRESSURE_ENGINE
        engine = ["--engine", "embedded", "--block-size", str(e.block_size)]
        engine += ["--kv-cache-bytes", str(e.kv_cache_bytes())]
        return cli(replay_args(engine, a.seed, out))
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp) / "profile.json"
        dump_profile(pressure_profile(default_model_dir()), profile)
        return cli(replay_args(["--engine", "twin", "--profile", str(profile)], a.seed, out))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
