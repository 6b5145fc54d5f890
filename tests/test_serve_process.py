"""``agentrt serve`` as users start it: a process on loopback, driven by the official
``openai`` client, stopped with Ctrl-C. Its engine is the session's ``agentrt engine serve``
(``--engine URL``), so no second model is loaded."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import httpx
import openai
import pytest
from engine_server_helpers import free_port, wait_healthy

from agentrt.server._runner import run_loop

pytestmark = [pytest.mark.server, pytest.mark.engine]


def test_serve_process_answers_the_openai_client_and_stops_on_sigint(engine_server: str) -> None:
    port = free_port()
    cmd = [
        sys.executable, "-m", "agentrt", "serve", "--engine", engine_server,
        "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    with open(os.devnull, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(proc, url, timeout_s=120)
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            model = client.models.list().data[0].id
            out = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Say hi."}], max_tokens=4
            )
            assert out.choices[0].message.content
            assert out.usage is not None and out.usage.completion_tokens >= 1
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
    assert code == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=2)


def test_run_loop_uses_uvloop_unless_asyncio_is_asked_for() -> None:
    pytest.importorskip("uvloop")

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert run_loop(loop_module()).startswith("uvloop")
    assert run_loop(loop_module(), "uvloop").startswith("uvloop")
    assert run_loop(loop_module(), "asyncio").startswith("asyncio")
