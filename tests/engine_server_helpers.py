"""Start ``agentrt engine serve`` in a subprocess on loopback and stop it with a signal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(proc: subprocess.Popen[bytes], url: str, timeout_s: float) -> None:
    """Poll ``url``/health until it answers 200 (a server process offers no other signal).

    Raises:
        RuntimeError: the process exited first.
        TimeoutError: not ready within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} was not ready in {timeout_s:g} s")
        time.sleep(0.3)


@dataclass
class ServerExit:
    """Filled in when the server has been stopped: its exit code and leftover processes."""

    returncode: int | None = None
    leftover: list[int] = field(default_factory=list)


@contextmanager
def engine_server_process(
    kv_cache_mib: int, max_model_len: int, stop: signal.Signals = signal.SIGTERM
) -> Iterator[tuple[str, ServerExit]]:
    """Yields the server's URL once /health answers, and a record its exit fills in.

    On leaving, ``stop`` is sent to the server; it must exit within 60 s (else it is
    killed and this raises) and every process it started must be gone within 15 s more.
    """
    port = free_port()
    cmd = [
        sys.executable, "-m", "agentrt", "engine", "serve", "--port", str(port),
        "--kv-cache-mib", str(kv_cache_mib), "--max-model-len", str(max_model_len),
    ]  # fmt: skip
    # Dev mode serves /reset_prefix_cache, which tests use to start from a cold cache.
    env = {**os.environ, "VLLM_SERVER_DEV_MODE": "1"}
    url = f"http://127.0.0.1:{port}"
    exit_ = ServerExit()
    with open(os.devnull, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        children: list[psutil.Process] = []
        try:
            wait_healthy(proc, url, timeout_s=300)
            children = psutil.Process(proc.pid).children(recursive=True)
            yield url, exit_
        finally:
            proc.send_signal(stop)
            try:
                exit_.returncode = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
            _gone, alive = psutil.wait_procs(children, timeout=15)
            exit_.leftover = [p.pid for p in alive]
