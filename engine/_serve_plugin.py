"""vLLM endpoint plugin: the routes ``HTTPEngine`` needs beyond vLLM's own.

Registered under the ``vllm.endpoint_plugins`` entry point as ``agentrt`` and enabled
by ``agentrt engine serve`` (``VLLM_PLUGINS=agentrt``). It adds:

* ``GET /agentrt/info`` — model, context length, block geometry, whether cache hints
  reach a tier-aware scheduler, and the tokenizer (so clients need no model files);
* ``GET /agentrt/tier_stats`` — per-tier cached blocks, evictions and hits
  (``_tier_wire.encode_tier_stats``'s form; ``{}`` when hints are off).
"""

from __future__ import annotations

import functools
from argparse import Namespace
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import State

from ._tier_wire import (
    ASYNC_TIER_SCHEDULER,
    TIER_SCHEDULER,
    encode_tier_stats,
    fetch_tier_stats,
)


class AgentrtEndpoints:
    """The plugin object vLLM instantiates (see vllm.plugins.endpoint_plugins)."""

    name = "agentrt"
    required_tasks = ("generate",)

    def __init__(self) -> None:
        self._engine: Any = None
        self._tokenizer_path: Path | None = None

    def attach_router(self, app: FastAPI) -> None:
        app.add_api_route("/agentrt/info", self._info, methods=["GET"])
        app.add_api_route("/agentrt/tier_stats", self._tier_stats, methods=["GET"])

    async def init_state(self, engine_client: Any, state: State, args: Namespace) -> None:
        self._engine = engine_client
        tokenizer = getattr(args, "tokenizer", None) or getattr(args, "model", None)
        self._tokenizer_path = Path(tokenizer) / "tokenizer.json" if tokenizer else None

    def _hints_enabled(self) -> bool:
        sched = getattr(self._engine.vllm_config.scheduler_config, "scheduler_cls", None)
        name = (
            sched
            if isinstance(sched, str)
            else f"{getattr(sched, '__module__', '')}.{getattr(sched, '__name__', '')}"
        )
        return name in (TIER_SCHEDULER, ASYNC_TIER_SCHEDULER)

    async def _info(self) -> Response:
        if self._engine is None:
            return JSONResponse({"error": "no engine"}, status_code=503)
        cfg = self._engine.vllm_config
        body = {
            "model": cfg.model_config.served_model_name or cfg.model_config.model,
            "max_model_len": cfg.model_config.max_model_len,
            "block_size": cfg.cache_config.block_size,
            "num_blocks": int(cfg.cache_config.num_gpu_blocks or 0),
            "supports_hints": self._hints_enabled(),
            "tokenizer_json": _read_text(self._tokenizer_path),
        }
        return JSONResponse(body)

    async def _tier_stats(self) -> Response:
        if self._engine is None or not self._hints_enabled():
            return JSONResponse({})
        return JSONResponse(encode_tier_stats(await fetch_tier_stats(self._engine)))


@functools.cache
def _read_text(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    return path.read_text(encoding="utf-8")
