"""Server-side tools of ``/v1/responses``: configured by the operator, enabled by name.

    agentrt serve --hosted-tools calculator,python --mcp files="python -m my_mcp_server"

Each group has a label: a built-in's name (``calculator``, ``python``) or the name given
to an MCP server. A request enables a group with ``{"type": "mcp", "server_label": L}``
(or, for a built-in, ``{"type": L}``); it can never name a URL or a command. MCP servers
are started once, with the server, and stopped with it.
"""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from agentrt.engine import check_tool_name
from agentrt.tools import Tool, calculator, mcp_stdio_tools, python_tool

BUILTIN_TOOLS: dict[str, Callable[[], Tool]] = {
    "calculator": lambda: calculator,
    "python": python_tool,
}


@dataclass(frozen=True, slots=True)
class McpServerSpec:
    """An MCP server (stdio) the operator configured: ``label`` is what requests name."""

    label: str
    command: str
    args: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> McpServerSpec:
        """``NAME=COMMAND [ARGS...]`` (shell-quoted), as ``--mcp`` takes it.

        Raises:
            ValueError: naming what is wrong.
        """
        label, sep, command = text.partition("=")
        words = shlex.split(command) if sep else []
        if not label.strip() or not words:
            raise ValueError(f"--mcp {text!r}: expected NAME=COMMAND [ARGS...]")
        check_label(label.strip(), "--mcp NAME")
        return cls(label.strip(), words[0], tuple(words[1:]))


def check_label(label: str, where: str) -> None:
    """Labels follow the tool-name pattern (they appear in output items and logs)."""
    check_tool_name(label, where)


class HostedTools:
    """The server's tool groups, by label (read-only once the server has started)."""

    def __init__(self, groups: Mapping[str, Sequence[Tool]]) -> None:
        self._groups = {label: tuple(tools) for label, tools in groups.items()}

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self._groups)

    def group(self, label: str) -> tuple[Tool, ...] | None:
        return self._groups.get(label)

    def is_builtin(self, label: str) -> bool:
        return label in BUILTIN_TOOLS and label in self._groups


@asynccontextmanager
async def started_tools(
    builtins: Sequence[str],
    mcp_servers: Sequence[McpServerSpec],
    extra: Mapping[str, Sequence[Tool]] | None = None,
) -> AsyncIterator[HostedTools]:
    """Start the configured tools for the duration of the block (MCP servers stop after).

    Args:
        builtins: labels of ``BUILTIN_TOOLS`` to offer.
        mcp_servers: MCP servers to start (their tools form one group each).
        extra: groups of in-process tools (an application embedding the server).

    Raises:
        ValueError: an unknown built-in, or a label given twice.
        MCPConnectionError: an MCP server did not start.
    """
    groups: dict[str, Sequence[Tool]] = {}

    def add(label: str, tools: Sequence[Tool]) -> None:
        if label in groups:
            raise ValueError(f"server-side tools: label {label!r} is configured twice")
        groups[label] = tools

    for name in builtins:
        if name not in BUILTIN_TOOLS:
            raise ValueError(f"unknown built-in tool {name!r}; choose from {list(BUILTIN_TOOLS)}")
        add(name, [BUILTIN_TOOLS[name]()])
    for label, tools in (extra or {}).items():
        add(label, tools)
    async with AsyncExitStack() as stack:
        for spec in mcp_servers:
            add(
                spec.label,
                await stack.enter_async_context(mcp_stdio_tools(spec.command, spec.args)),
            )
        yield HostedTools(groups)
