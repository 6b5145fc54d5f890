"""agentrt.server — the REST API: OpenAI-compatible chat completions and server-side agent runs.

    from agentrt.server import ServerConfig, create_app

    app = create_app(engine, agents=[my_agent], config=ServerConfig(max_concurrency=8))

Run it with ``agentrt serve`` or any ASGI server (uvicorn with ``loop="asyncio"``).
"""

from __future__ import annotations

from agentrt._catalog import BUILTIN_AGENTS, calculator_agent, load_agents

from ._app import create_app
from ._auth import ApiKey, KeyRing, load_keys, make_key
from ._config import ServerConfig
from ._errors import APIError
from ._runner import running_server

__all__ = [
    "BUILTIN_AGENTS",
    "APIError",
    "ApiKey",
    "KeyRing",
    "ServerConfig",
    "calculator_agent",
    "create_app",
    "load_agents",
    "load_keys",
    "make_key",
    "running_server",
]
