"""``agentrt serve`` on ScriptedEngine in a process of its own, for tests that measure the
server alone (its event loop must not share a GIL with the test's client).

    with scripted_server_process() as (url, log):
        ...   # log: the path of the server's stderr (tracebacks of unhandled errors)

Run directly, it serves until SIGTERM: ``python tests/scripted_server.py PORT``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine_server_helpers import free_port, wait_healthy

from agentrt.engine import ScriptContext, ScriptedEngine, TimingModel

FAST = TimingModel(prefill_s_per_token=0.0, decode_step_s=0.0005)


def reply(ctx: ScriptContext) -> str:
    """The calculator agent's two steps (call, then answer); a short text for anything else."""
    last = ctx.prompt_text.rsplit("<|im_start|>user\n", 1)[-1]
    if "calculator" not in ctx.prompt_text[:4000] or last.startswith("<tool_response>"):
        return "The answer is 4."
    expr = last.split("<|im_end|>")[0][:200]
    call = json.dumps({"name": "calculator", "arguments": {"expression": expr}})
    return f"<tool_call>\n{call}\n</tool_call>"


async def _serve(port: int) -> None:
    from agentrt.server import calculator_agent, create_app
    from agentrt.server._runner import EmbeddedServer, bound_socket, serve, uvicorn_config

    engine = ScriptedEngine(reply, timing=FAST, record_requests=False)
    app = create_app(engine, agents=[calculator_agent()])
    server = EmbeddedServer(uvicorn_config(app, "127.0.0.1", port))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: setattr(server, "should_exit", True))
    await serve(server, bound_socket("127.0.0.1", port))
    await engine.aclose()


@contextmanager
def scripted_server_process() -> Iterator[tuple[str, Path]]:
    """Yields the server's URL once it answers, and the path of its log; stops it after."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            cmd = [sys.executable, __file__, str(port)]
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            try:
                url = f"http://127.0.0.1:{port}"
                wait_healthy(proc, url, timeout_s=60)
                yield url, log_path
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    raise


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))
