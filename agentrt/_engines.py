"""Choosing an engine: an Engine object, a URL of a remote engine, or the embedded default.

The embedded default (vLLM in this process, default model) starts on first use and is
shared by every agent of the process until ``close_default_engine()``.
"""

from __future__ import annotations

import anyio

from agentrt.engine import Engine, HTTPEngine, VLLMEngine

_default: Engine | None = None
_remote: dict[str, Engine] = {}
_lock: anyio.Lock | None = None


def set_default_engine(engine: Engine | None) -> None:
    """Use ``engine`` for agents that name none (None forgets the current default)."""
    global _default
    _default = engine


async def resolve_engine(spec: Engine | str | None) -> Engine:
    """The engine an agent runs on."""
    global _default, _lock
    if spec is not None and not isinstance(spec, str):
        return spec
    if _lock is None:
        _lock = anyio.Lock()
    async with _lock:
        if isinstance(spec, str):
            if spec not in _remote:
                _remote[spec] = await HTTPEngine.connect(spec)
            return _remote[spec]
        if _default is None:
            _default = await VLLMEngine.start()
        return _default


async def close_default_engine() -> None:
    """Shut down the embedded default engine and the remote connections made by URL."""
    global _default, _lock
    engines = [e for e in (_default, *_remote.values()) if e is not None]
    _default = None
    _remote.clear()
    _lock = None
    for e in engines:
        await e.aclose()
