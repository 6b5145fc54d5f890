"""``ServerConfig``: the settings of one server (limits, keys, stores), and its live state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, TypeVar

import anyio
from anyio import CapacityLimiter
from starlette.requests import Request

from agentrt._tool_choice import DEFAULT_PARALLEL_UNSET, PARALLEL_UNSET, ParallelUnset
from agentrt.engine import Engine, ToolFormatName, tool_format

from ._auth import ApiKey, KeyRing
from ._limits import DEFAULT_SCHEMA_DEPTH, DEFAULT_SCHEMA_NODES

if TYPE_CHECKING:
    from ._chat_session import ChatCodesign
    from ._gate import Limiter
    from ._health import EngineWatch
    from ._idle import IdleSweeper, ServerClock
    from ._metrics import Metrics
    from ._registry import AgentRegistry
    from ._responses_tools import HostedTools, McpServerSpec
    from ._responses_turn import ResponseStore
    from ._runs import RunStore, SessionStore
    from ._split_prefill import SplitPrefills

T = TypeVar("T")


@dataclass(frozen=True)
class ServerConfig:
    """How the server behaves. Defaults suit one machine serving a few clients.

    Attributes:
        keys: accepted API keys (empty: no authentication).
        max_concurrency: chat completions in flight plus agent runs running; more get 429.
        max_body_bytes: larger request bodies get 413.
        model_name: the name ``/v1/models`` lists (None: the engine's model folder name).
        default_temperature: for requests that set none (OpenAI's default is 1).
        tool_format: how the engine's model writes tool calls, for chat completions and
            for agents that set none (None: the one its chat template teaches).
        max_finished_runs, run_ttl_s: finished runs kept for fetching (LRU, and TTL).
        max_sessions, session_ttl_s: idle conversations kept for continuing (LRU, TTL).
        max_schema_depth: how deeply a tool's parameters or a ``response_format`` schema
            may nest (JSON objects and arrays); deeper is a 400.
        max_schema_nodes: JSON values all schemas of one request may hold together (each
            tool counts one more); more is a 400. Checking and compiling schemas costs
            time per value, so this bounds the work one request can cause.
        allowed_hosts: ``Host`` names accepted besides loopback ones (``"*"``: any); None:
            the Host header is checked only when there are no keys (see ``_browser``).
        allowed_origins: browser origins accepted besides loopback ones (``"*"``: any).
        prep_threads: worker threads that validate, render and tokenize requests, off
            the event loop (few: each competes with the loop for the GIL).
        session_reuse: remember each chat completion's tokens (per API key) and send an
            echoed assistant turn as those tokens instead of re-rendering it.
        chat_sessions: chat requests join sessions (``prompt_cache_key``, ``user``,
            ``X-Session-Id`` or inferred): hints by role, run priority as agent runs
            have it (earlier runs first, within a gap), release after a final answer or
            ``chat_session_idle_s`` idle.
        chat_split_prefill: after a ``tool_calls`` completion, prefill split A while the
            client runs its tools (needs both switches above).
        max_remembered_turns, remembered_turn_ttl_s: chat completions remembered (LRU,
            and idle TTL).
        max_chat_sessions, chat_session_idle_s: live chat sessions (LRU, and idle TTL
            after which the server's idle sweeper releases the session).
        responses_split_prefill: after a stored ``/v1/responses`` response ending in
            function calls, prefill split A of its continuation while the client runs them.
        cut_repeated_calls: a chat completion ends at the first call that repeats an
            earlier call of the same response; the repeat is dropped and decoding stops.
        parallel_unset: what a request that leaves ``parallel_tool_calls`` unset gets
            (see ``agentrt._tool_choice.ParallelUnset``).
        hosted_tools: built-in tools ``/v1/responses`` requests may enable by name
            (``agentrt.server._responses_tools.BUILTIN_TOOLS``).
        mcp_servers: MCP servers started with the server, enabled by their label.
        max_responses, response_ttl_s: stored responses kept (LRU, and idle TTL).
    """

    keys: KeyRing = field(default_factory=KeyRing)
    max_concurrency: int = 64
    max_body_bytes: int = 4 * 2**20
    model_name: str | None = None
    default_temperature: float = 1.0
    tool_format: ToolFormatName | None = None
    max_finished_runs: int = 256
    run_ttl_s: float = 3600.0
    max_sessions: int = 256
    session_ttl_s: float = 3600.0
    max_schema_depth: int = DEFAULT_SCHEMA_DEPTH
    max_schema_nodes: int = DEFAULT_SCHEMA_NODES
    allowed_hosts: tuple[str, ...] | None = None
    allowed_origins: tuple[str, ...] = ()
    prep_threads: int = 2
    session_reuse: bool = True
    chat_sessions: bool = True
    chat_split_prefill: bool = True
    max_remembered_turns: int = 4096
    remembered_turn_ttl_s: float = 3600.0
    max_chat_sessions: int = 4096
    chat_session_idle_s: float = 300.0
    cut_repeated_calls: bool = True
    parallel_unset: ParallelUnset = DEFAULT_PARALLEL_UNSET
    hosted_tools: tuple[str, ...] = ("calculator",)
    mcp_servers: tuple[McpServerSpec, ...] = ()
    max_responses: int = 1024
    response_ttl_s: float = 3600.0
    responses_split_prefill: bool = True

    def __post_init__(self) -> None:
        for name in (
            "max_concurrency",
            "max_body_bytes",
            "max_finished_runs",
            "max_sessions",
            "max_schema_depth",
            "max_schema_nodes",
            "prep_threads",
            "max_remembered_turns",
            "max_chat_sessions",
            "max_responses",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"ServerConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "run_ttl_s",
            "session_ttl_s",
            "remembered_turn_ttl_s",
            "chat_session_idle_s",
            "response_ttl_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"ServerConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.tool_format is not None:
            tool_format(self.tool_format)  # raises ValueError naming the formats
        if self.parallel_unset not in PARALLEL_UNSET:
            raise ValueError(
                f"ServerConfig.parallel_unset must be one of {list(PARALLEL_UNSET)}, "
                f"got {self.parallel_unset!r}"
            )


@dataclass(slots=True)
class ServerState:
    """What every endpoint reaches through ``request.app.state.server``."""

    engine: Engine
    config: ServerConfig
    model_name: str
    limiter: Limiter
    metrics: Metrics
    agents: AgentRegistry
    runs: RunStore
    sessions: SessionStore
    prep: CapacityLimiter
    watch: EngineWatch
    codesign: ChatCodesign
    hosted: HostedTools
    responses: ResponseStore
    clock: ServerClock
    splits: SplitPrefills
    sweeper: IdleSweeper

    async def off_loop(self, fn: Callable[[], T]) -> T:
        """``fn()`` on a preparation thread: validating, rendering and tokenizing a request
        must not hold up the event loop, which serves every other client meanwhile."""
        return await anyio.to_thread.run_sync(fn, limiter=self.prep)

    def model_names(self) -> tuple[str, ...]:
        """Names a request's ``model`` may use: the listed name, or the engine's own."""
        return (self.model_name, self.engine.info.model)


def default_model_name(engine: Engine) -> str:
    """The model folder's name for a path (``/models/SmolLM2-135M-Instruct``), else as is."""
    model: str = engine.info.model
    if "/" in model or "\\" in model:
        return PurePath(model).name or model
    return model


def state_of(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


def api_key_of(request: Request) -> ApiKey | None:
    """The caller's key (set by the gate), or None when authentication is off."""
    key: ApiKey | None = request.scope.get("state", {}).get("api_key")
    return key
