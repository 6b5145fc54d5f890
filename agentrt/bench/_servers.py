"""The two servers compared side by side: vLLM's own OpenAI server and ``agentrt serve``.

Both serve the same model with the same engine settings (dtype, KV-cache memory, context
length, eager mode, prefix caching); vLLM's gets the project's tool template with
``--enable-auto-tool-choice --tool-call-parser hermes``, as a user of vLLM would start it.
Used by ``agentrt bench frameworks`` and the differential suite (``tests/conformance``).
Each server is a child process in its own process group, stopped by its pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx

from agentrt.engine import EngineOptions
from agentrt.engine._chat import TEMPLATE_NAME
from agentrt.engine._model import resolve_model
from agentrt.engine._vllm_args import cpu_env, engine_arg_dict

SERVED_NAME = "default"
_AGENTRT_ONLY = ("scheduler_cls", "logits_processors", "scheduling_policy", "seed")


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Engine settings both servers share."""

    model: str | None = None
    kv_cache_mib: int = 512
    max_model_len: int = 4096
    dtype: str = "auto"

    def engine_options(self) -> EngineOptions:
        return EngineOptions(
            model=self.model,
            max_model_len=self.max_model_len,
            kv_cache_bytes=self.kv_cache_mib * 2**20,
            enforce_eager=True,
            dtype=self.dtype,
            cache_hints=False,
        )


def vllm_argv(settings: ServerSettings, port: int) -> tuple[list[str], dict[str, str]]:
    """vLLM's own OpenAI server: the engine arguments agentrt would use, minus agentrt's
    additions (tier scheduler, forced-output processor, priority scheduling)."""
    folder = resolve_model(settings.model)
    args = engine_arg_dict(settings.engine_options(), folder)
    for key in _AGENTRT_ONLY:
        args.pop(key, None)
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv += [flag] if value else []
        else:
            argv += [flag, str(value)]
    template = resources.files("agentrt.engine.templates").joinpath(TEMPLATE_NAME)
    argv += [
        "--chat-template",
        str(Path(str(template))),
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "hermes",
        "--enable-prompt-tokens-details",
        "--served-model-name",
        SERVED_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {**cpu_env(), **os.environ}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.pop("VLLM_PLUGINS", None)
    return argv, env


def agentrt_argv(
    settings: ServerSettings, port: int, extra: Sequence[str] = ()
) -> tuple[list[str], dict[str, str]]:
    """``agentrt serve`` on the embedded engine with the same settings (``extra``: more
    ``agentrt serve`` flags, e.g. ``--parallel-unset one``)."""
    argv = [sys.executable, "-m", "agentrt", "serve", "--port", str(port)]
    if settings.model:
        argv += ["--model", settings.model]
    argv += [
        "--kv-cache-mib",
        str(settings.kv_cache_mib),
        "--max-model-len",
        str(settings.max_model_len),
        "--dtype",
        settings.dtype,
        "--served-model-name",
        SERVED_NAME,
        *extra,
    ]
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    return argv, env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def launched(
    argv: list[str], env: dict[str, str], port: int, *, log: Path, timeout_s: float = 900.0
) -> Iterator[str]:
    """Start a server, wait until ``/v1/models`` answers, yield its base URL, stop it.

    Raises:
        RuntimeError: the server exited or did not answer within ``timeout_s`` (the
            message names its log file).
    """
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            _wait_ready(proc, url, timeout_s, log)
            yield url
        finally:
            _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(url + "/v1/models", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)  # polling a child process: there is no event to wait on
    raise RuntimeError(f"server not ready after {timeout_s:.0f} s; see {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (its engine core too), then SIGKILL if needed."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
