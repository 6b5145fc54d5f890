"""SIGTERM to an ``agentrt`` command running the embedded engine ends it cleanly: exit
status 128 + 15 and no vLLM engine-core process left behind (killed outright, the
command would orphan it, holding its memory)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.engine]

TRACES = Path(__file__).resolve().parents[1] / "traces"


def test_sigterm_stops_a_replay_and_its_engine_core(tmp_path: Path) -> None:
    cmd = [
        sys.executable, "-m", "agentrt", "replay", "--trace",
        str(TRACES / "sample-websearch.jsonl"), "--engine", "embedded", "--rates", "0.2",
        "--modes", "baseline", "--no-plots", "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
    with open(os.devnull, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            parent = psutil.Process(proc.pid)
            deadline = time.monotonic() + 240
            while True:  # poll for the engine core: the command offers no other signal
                tree = parent.children(recursive=True)
                if any("EngineCore" in _name(p) for p in tree):
                    break
                assert proc.poll() is None, f"replay exited early with {proc.returncode}"
                assert time.monotonic() < deadline, "no engine core started in 240 s"
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 128 + signal.SIGTERM
    _gone, alive = psutil.wait_procs(tree, timeout=30)
    assert alive == [], f"left behind: {[(p.pid, _name(p)) for p in alive]}"
    assert not (tmp_path / "out" / "report.json").exists()  # stopped, not finished


def _name(p: psutil.Process) -> str:
    try:
        return " ".join([p.name(), *p.cmdline()[:1]])
    except psutil.Error:
        return ""
