"""``create_app``: the FastAPI application of ``agentrt serve`` on any ``Engine``.

Layers, outermost first: the ``Gate`` (browsers, keys, size, concurrency, metrics), FastAPI's
error handling (every error an OpenAI error object), the routers (chat, agents) and the
operational endpoints (``/health``, ``/metrics``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from starlette.responses import Response

from agentrt import Agent, resolve_engine
from agentrt._catalog import calculator_agent
from agentrt.engine import Engine, EngineStats
from agentrt.tools import Tool

from . import _agents, _chat, _responses
from ._browser import BrowserGuard
from ._chat_session import chat_codesign
from ._config import ServerConfig, ServerState, default_model_name, state_of
from ._errors import APIError, install_error_handlers
from ._gate import Gate, Limiter
from ._health import EngineWatch
from ._idle import IdleSweeper, MonotonicClock, ServerClock, sweep_period
from ._metrics import CONTENT_TYPE, Metrics
from ._registry import AgentRegistry
from ._responses_tools import started_tools
from ._responses_turn import ResponseStore
from ._runs import RunStore, SessionStore
from ._split_prefill import SplitPrefills

_STATS_TIMEOUT_S = 2.0


def create_app(
    engine: Engine | str | None = None,
    *,
    agents: Iterable[Agent] | None = None,
    config: ServerConfig | None = None,
    hosted_tools: Mapping[str, Sequence[Tool]] | None = None,
    clock: ServerClock | None = None,
) -> FastAPI:
    """The REST server as an ASGI app.

    Args:
        engine: an ``Engine`` (left running at shutdown: the caller owns it), a URL of a
            remote engine, or None for the embedded default (both resolved on start-up
            through ``agentrt.resolve_engine``, and closed at shutdown).
        agents: agents served under ``/v1/agents`` (None: the built-in ``calculator``).
            An agent naming no engine runs on the server's.
        config: limits, keys, store sizes and the server-side tools of ``/v1/responses``.
        hosted_tools: more server-side tool groups, by label (in-process tools of an
            application embedding the server), besides ``config``'s built-ins and MCP.
        clock: the time idle sessions and stored responses expire on, and that the idle
            sweeper waits on (None: real time; tests pass one they advance).

    Returns:
        A FastAPI app; run it with uvicorn (``loop="asyncio"``, lifespan on).
    """
    cfg = config or ServerConfig()
    agent_list = list(agents) if agents is not None else [calculator_agent()]
    limiter = Limiter(cfg.max_concurrency)
    metrics = Metrics(lambda: limiter.active)
    server_clock = clock or MonotonicClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = await resolve_engine(engine)
        try:
            async with started_tools(cfg.hosted_tools, cfg.mcp_servers, hosted_tools) as hosted:
                splits = SplitPrefills(server_clock.now)
                metrics.watch_splits(lambda: splits.outcomes)
                codesign = chat_codesign(
                    session_reuse=cfg.session_reuse,
                    chat_sessions=cfg.chat_sessions,
                    split_prefill=cfg.chat_split_prefill,
                    max_turns=cfg.max_remembered_turns,
                    turn_ttl_s=cfg.remembered_turn_ttl_s,
                    max_sessions=cfg.max_chat_sessions,
                    session_idle_s=cfg.chat_session_idle_s,
                    splits=splits,
                    clock=server_clock.now,
                )
                responses = ResponseStore(cfg.max_responses, cfg.response_ttl_s, server_clock.now)
                st = ServerState(
                    engine=resolved,
                    config=cfg,
                    model_name=cfg.model_name or default_model_name(resolved),
                    limiter=limiter,
                    metrics=metrics,
                    agents=AgentRegistry(agent_list, resolved, cfg.tool_format),
                    runs=RunStore(cfg.max_finished_runs, cfg.run_ttl_s),
                    sessions=SessionStore(cfg.max_sessions, cfg.session_ttl_s),
                    prep=anyio.CapacityLimiter(cfg.prep_threads),
                    watch=EngineWatch(resolved),
                    hosted=hosted,
                    responses=responses,
                    codesign=codesign,
                    clock=server_clock,
                    splits=splits,
                    sweeper=IdleSweeper(
                        resolved,
                        server_clock,
                        sweep_period(cfg.chat_session_idle_s, cfg.response_ttl_s),
                        [codesign.expired, responses.take_dropped],
                        splits,
                    ),
                )
                st.sweeper.start()
                app.state.server = st
                try:
                    yield
                finally:
                    await st.watch.aclose()
                    await st.sweeper.aclose()
                    await st.splits.aclose()
                    await _agents.cancel_all(st)
                    codesign.close()
        finally:
            if not isinstance(engine, Engine):
                from agentrt import close_default_engine

                await close_default_engine()

    app = FastAPI(
        title="agentrt", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    install_error_handlers(app)
    app.include_router(_chat.router)
    app.include_router(_agents.router)
    app.include_router(_responses.router)

    @app.get("/health")
    async def health(request: Request) -> Response:
        ok = await state_of(request).watch.healthy()  # never waits on a busy engine
        body = b'{"status":"ok"}' if ok else b'{"status":"engine_unavailable"}'
        return Response(body, status_code=200 if ok else 503, media_type="application/json")

    @app.get("/metrics")
    async def prometheus(request: Request) -> Response:
        st = state_of(request)
        return Response(st.metrics.render(await _engine_stats(st)), media_type=CONTENT_TYPE)

    guard = BrowserGuard(cfg.allowed_hosts, cfg.allowed_origins, keys_enabled=cfg.keys.enabled)
    app.add_middleware(
        Gate,
        keys=cfg.keys,
        guard=guard,
        limiter=limiter,
        max_body_bytes=cfg.max_body_bytes,
        metrics=metrics,
    )
    return app


async def _engine_stats(st: ServerState) -> EngineStats | None:
    """The engine's snapshot, or None if it does not answer in time (it is down or stuck)."""
    try:
        with anyio.fail_after(_STATS_TIMEOUT_S):
            return await st.engine.stats()
    except (TimeoutError, Exception):
        return None


__all__ = ["APIError", "ServerConfig", "create_app"]
