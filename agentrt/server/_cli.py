"""``agentrt serve``: the REST server on the embedded engine (default) or a remote one.

    agentrt serve --port 8000 --agents mypkg.agents:all --api-key $KEY

Without an API key the server listens on loopback only (``--insecure-no-auth`` overrides
that), and refuses what a web page could make a browser send it (see ``_browser``).
SIGINT/SIGTERM stop accepting connections, let open responses finish (briefly), cancel
running agent runs, then close the engine; a second SIGINT stops at once.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import signal
import sys
from collections.abc import Sequence

from agentrt import Agent
from agentrt._catalog import BUILTIN_AGENTS, load_agents
from agentrt._tool_choice import DEFAULT_PARALLEL_UNSET, PARALLEL_UNSET
from agentrt.cli._engine_options import add_engine_flags, engine_options
from agentrt.engine import TOOL_FORMAT_NAMES

from ._auth import ENV_KEYS, KeyRing, load_keys
from ._browser import is_loopback
from ._config import ServerConfig
from ._limits import DEFAULT_SCHEMA_NODES
from ._responses_tools import BUILTIN_TOOLS, McpServerSpec

log = logging.getLogger("agentrt.server")


def parse_bytes(text: str) -> int:
    """``"512MiB"``, ``"4MB"``, ``"1048576"`` -> bytes."""
    units = {
        "kib": 2**10,
        "mib": 2**20,
        "gib": 2**30,
        "kb": 10**3,
        "mb": 10**6,
        "gb": 10**9,
        "b": 1,
    }
    low = text.strip().lower()
    for suffix, factor in units.items():
        if low.endswith(suffix) and low[: -len(suffix)].strip():
            return int(float(low[: -len(suffix)]) * factor)
    try:
        return int(low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r}") from None


def add_arguments(p: argparse.ArgumentParser, argv: Sequence[str] = ()) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    add_engine_flags(p)  # the embedded engine's options, as every command spells them
    remote = p.add_argument_group("remote engine and model name")
    remote.add_argument("--engine", metavar="URL", help="a remote engine; default: embedded vLLM")
    remote.add_argument(
        "--served-model-name", help="the model name clients use (default: folder name)"
    )
    remote.add_argument(
        "--tool-format",
        choices=list(TOOL_FORMAT_NAMES),
        help="how the model writes tool calls (default: the one its chat template teaches)",
    )
    remote.add_argument(
        "--parallel-unset",
        choices=list(PARALLEL_UNSET),
        default=DEFAULT_PARALLEL_UNSET,
        help="requests that leave parallel_tool_calls unset: one call (one, the default: "
        "measured to avoid repeated calls), several allowed (allow, OpenAI's meaning), or "
        "several with a grammar offering the end after each call (end_first)",
    )
    remote.add_argument(
        "--keep-repeated-calls",
        action="store_true",
        help="return every call a response writes (default: a response ends at the first "
        "call that repeats an earlier one)",
    )
    ag = p.add_argument_group("agents")
    ag.add_argument(
        "--agents",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="agents to serve: an Agent or a list of them (repeatable)",
    )
    ag.add_argument(
        "--builtin-agents",
        default="calculator",
        help=f"comma-separated built-ins to serve ({', '.join(BUILTIN_AGENTS)}); '' for none",
    )
    rt = p.add_argument_group("server-side tools of /v1/responses (enabled per request by name)")
    rt.add_argument(
        "--hosted-tools",
        default="calculator",
        help=f"comma-separated built-ins ({', '.join(BUILTIN_TOOLS)}); '' for none",
    )
    rt.add_argument(
        "--mcp",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="start this MCP server (stdio) with the server; requests enable it by NAME "
        "(repeatable; COMMAND is shell-quoted, e.g. files='python -m my_server')",
    )
    sec = p.add_argument_group("safety")
    sec.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help=f"accept this Bearer key (repeatable; also ${ENV_KEYS}, comma-separated)",
    )
    sec.add_argument(
        "--api-keys-file",
        metavar="PATH",
        help="keys file: JSON list of {key, name, cache_salt} or 'KEY [NAME]' lines",
    )
    sec.add_argument(
        "--max-concurrency",
        type=int,
        default=64,
        help="chat completions in flight + agent runs running; more get 429",
    )
    sec.add_argument("--max-body-bytes", type=parse_bytes, default=4 * 2**20)
    sec.add_argument(
        "--max-schema-nodes",
        type=int,
        default=DEFAULT_SCHEMA_NODES,
        help="JSON values the schemas of one request (tools, response_format) may hold",
    )
    sec.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="accept this Host header besides loopback names (repeatable; '*': any)",
    )
    sec.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="accept browser requests from this origin, e.g. https://app.example (repeatable)",
    )
    sec.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow listening beyond loopback without an API key (anyone reaching it may use it)",
    )
    co = p.add_argument_group("chat co-design (each switch measures what it buys)")
    co.add_argument(
        "--no-session-reuse",
        action="store_true",
        help="re-render echoed assistant turns instead of reusing the generated tokens",
    )
    co.add_argument(
        "--no-chat-sessions",
        action="store_true",
        help="chat requests join no session: two coarse tiers, no priority, no release",
    )
    co.add_argument(
        "--no-chat-split-prefill",
        action="store_true",
        help="no split prefill after a tool_calls completion",
    )
    co.add_argument(
        "--no-responses-split-prefill",
        action="store_true",
        help="no split prefill after a stored /v1/responses response ending in function calls",
    )
    co.add_argument(
        "--chat-session-idle",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="release a chat session idle this long (default: 300)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--loop",
        default="auto",
        choices=["auto", "uvloop", "asyncio"],
        help="event loop (auto: uvloop when installed, else asyncio)",
    )


def build(args: argparse.Namespace) -> tuple[list[Agent], ServerConfig]:
    """Agents and configuration from the arguments (before any engine starts: fail fast).

    Raises:
        ValueError: naming the argument that is wrong.
    """
    agents: list[Agent] = []
    for name in filter(None, (n.strip() for n in args.builtin_agents.split(","))):
        if name not in BUILTIN_AGENTS:
            raise ValueError(
                f"--builtin-agents: unknown agent {name!r}; choose from {list(BUILTIN_AGENTS)}"
            )
        agents.append(BUILTIN_AGENTS[name]())
    for spec in args.agents:
        agents.extend(load_agents(spec))
    hosted = tuple(filter(None, (n.strip() for n in args.hosted_tools.split(","))))
    for name in hosted:
        if name not in BUILTIN_TOOLS:
            raise ValueError(
                f"--hosted-tools: unknown built-in {name!r}; choose from {list(BUILTIN_TOOLS)}"
            )
    mcp = tuple(McpServerSpec.parse(spec) for spec in args.mcp)
    labels = [*hosted, *(m.label for m in mcp)]
    if len(set(labels)) != len(labels):
        raise ValueError(f"--mcp/--hosted-tools: each label may be used once, got {labels}")
    keys: KeyRing = load_keys(args.api_key, os.environ.get(ENV_KEYS), args.api_keys_file)
    local = is_loopback(args.host)
    if not local and not keys.enabled and not args.insecure_no_auth:
        raise ValueError(
            f"--host {args.host}: listening beyond loopback needs an API key (--api-key, "
            f"${ENV_KEYS} or --api-keys-file); --insecure-no-auth serves it without one"
        )
    hosts: tuple[str, ...] | None = tuple(args.allowed_host) or None
    if not local and not keys.enabled and args.host not in ("0.0.0.0", "::"):
        hosts = (args.host, *(hosts or ()))  # clients name the address it listens on
    config = ServerConfig(
        keys=keys,
        max_concurrency=args.max_concurrency,
        max_body_bytes=args.max_body_bytes,
        model_name=args.served_model_name,
        tool_format=args.tool_format,
        cut_repeated_calls=not args.keep_repeated_calls,
        parallel_unset=args.parallel_unset,
        max_schema_nodes=args.max_schema_nodes,
        allowed_hosts=hosts,
        allowed_origins=tuple(args.allowed_origin),
        session_reuse=not args.no_session_reuse,
        chat_sessions=not args.no_chat_sessions,
        chat_split_prefill=not args.no_chat_split_prefill,
        responses_split_prefill=not args.no_responses_split_prefill,
        chat_session_idle_s=args.chat_session_idle,
        hosted_tools=hosted,
        mcp_servers=mcp,
    )
    return agents, config


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        agents, config = build(args)
    except (ValueError, ImportError, OSError) as exc:
        print(f"agentrt serve: {exc}", file=sys.stderr)
        return 2
    if not is_loopback(args.host) and not config.keys.enabled:
        log.warning(
            "listening on %s without API keys (--insecure-no-auth): anyone who can reach it "
            "may use it",
            args.host,
        )
    from ._runner import run_loop

    if args.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        print("agentrt serve: --loop uvloop, but uvloop is not installed", file=sys.stderr)
        return 2
    return run_loop(_serve(args, agents, config), args.loop)


async def _serve(args: argparse.Namespace, agents: list[Agent], config: ServerConfig) -> int:
    from agentrt import close_default_engine, resolve_engine
    from agentrt.engine import Engine, EngineError, HTTPEngine

    from ._app import create_app
    from ._config import default_model_name
    from ._runner import EmbeddedServer, bound_socket, serve, uvicorn_config

    engine: Engine
    if args.engine:
        try:
            engine = await resolve_engine(args.engine)
        except EngineError as exc:  # e.g. the router or engine at the URL is down
            print(f"agentrt serve: {exc}", file=sys.stderr)
            return 1
        if isinstance(engine, HTTPEngine):
            engine.jump_forward = not args.no_jump_forward
    else:
        from agentrt.engine import VLLMEngine

        engine = await VLLMEngine.start(engine_options(args))
    try:
        app = create_app(engine, agents=agents, config=config)
        sock = bound_socket(args.host, args.port)
        server = EmbeddedServer(uvicorn_config(app, args.host, args.port, log_level=args.log_level))
        loop = asyncio.get_running_loop()

        def stop() -> None:
            if server.should_exit:
                server.force_exit = True  # second signal: do not wait for open responses
            server.should_exit = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        print(
            f"agentrt serve: http://{args.host}:{sock.getsockname()[1]} "
            f"(model {config.model_name or default_model_name(engine)}, {len(agents)} agents, "
            f"{'API keys on' if config.keys.enabled else 'no API keys'})",
            file=sys.stderr,
        )
        await serve(server, sock)
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().remove_signal_handler(sig)
        if args.engine:
            await close_default_engine()
        else:
            await engine.aclose()
