"""``agentrt engine serve``: vLLM's own OpenAI-compatible server, configured for agentrt.

The server is vLLM's (``vllm.entrypoints.openai.api_server``), started with the same
engine arguments as the embedded engine (tier-aware scheduler, forced-output processor),
agentrt's tool chat template, cached-token usage, and the ``agentrt`` endpoint plugin.
The process replaces itself with the server, so SIGINT/SIGTERM reach vLLM directly and
it shuts down the way it always does.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from ._chat import TEMPLATE_NAME
from ._model import resolve_model
from ._vllm_args import EngineOptions, cpu_env, engine_arg_dict

PLUGIN_NAME = "agentrt"


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """Where to listen and what to call the model. Listens on loopback unless told otherwise."""

    host: str = "127.0.0.1"
    port: int = 8100
    served_model_name: str | None = None
    api_key: str | None = None


def _flag(name: str, value: Any) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag] if value else []
    if isinstance(value, list):
        return [flag, *map(str, value)] if value else []
    if isinstance(value, dict):
        return [flag, json.dumps(value)]  # vLLM parses dict-valued flags as JSON
    return [flag, str(value)]


def server_argv(engine: EngineOptions, serve: ServeOptions) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of the vLLM server process."""
    folder = resolve_model(engine.model)
    args = engine_arg_dict(engine, folder)
    model = args.pop("model")
    template = resources.files("agentrt.engine.templates").joinpath(TEMPLATE_NAME)
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
    for key, value in args.items():
        argv += _flag(key, value)
    argv += [
        "--host",
        serve.host,
        "--port",
        str(serve.port),
        "--chat-template",
        str(Path(str(template))),
        "--enable-prompt-tokens-details",
        "--served-model-name",
        serve.served_model_name or Path(model).name,
    ]
    if serve.api_key:
        argv += ["--api-key", serve.api_key]
    env = {**cpu_env(), **os.environ}
    env["VLLM_PLUGINS"] = PLUGIN_NAME
    env.setdefault("HF_HUB_OFFLINE", "1")
    return argv, env


def exec_server(engine: EngineOptions, serve: ServeOptions) -> NoReturn:
    """Replace this process with the configured vLLM server."""
    argv, env = server_argv(engine, serve)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)
