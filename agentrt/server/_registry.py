"""The agents a server runs: loaded from ``pkg.module:attr`` or built in, bound to the engine.

An agent that names no engine runs on the server's; each API key's ``cache_salt`` is
mixed into the agent's, so two tenants' runs never share KV cache.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from agentrt import Agent
from agentrt.engine import Engine, ToolFormatName

from ._auth import ApiKey
from ._errors import APIError


class AgentRegistry:
    """Agents by name, each bound to the server's engine (and its tool format, when the
    server sets one) unless it names its own."""

    def __init__(
        self, agents: Iterable[Agent], engine: Engine, tool_format: ToolFormatName | None = None
    ) -> None:
        self._agents: dict[str, Agent] = {}
        for a in agents:
            if a.name in self._agents:
                raise ValueError(f"two agents are named {a.name!r}; agent names must be unique")
            if a.engine is None:
                a = dataclasses.replace(a, engine=engine, tool_format=a.tool_format or tool_format)
            self._agents[a.name] = a
        self._salted: dict[tuple[str, str], Agent] = {}

    def names(self) -> list[str]:
        return sorted(self._agents)

    def get(self, name: str) -> Agent:
        """Raises: APIError 404 for an unknown agent."""
        agent = self._agents.get(name)
        if agent is None:
            raise APIError(
                404,
                f"agent {name!r} does not exist; see GET /v1/agents",
                param="agent",
                code="agent_not_found",
            )
        return agent

    def for_key(self, name: str, key: ApiKey | None) -> Agent:
        """The agent as ``key``'s tenant runs it (its own KV-cache partition)."""
        agent = self.get(name)
        if key is None or key.cache_salt is None:
            return agent
        salt = (
            key.cache_salt if agent.cache_salt is None else f"{agent.cache_salt}:{key.cache_salt}"
        )
        cached = self._salted.get((name, salt))
        if cached is None:
            cached = self._salted[(name, salt)] = dataclasses.replace(agent, cache_salt=salt)
        return cached

    def describe(self, name: str) -> dict[str, Any]:
        a = self.get(name)
        tool_choice = a.tool_choice
        return {
            "id": a.name,
            "object": "agent",
            "name": a.name,
            "instructions": a.instructions,
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": dict(t.parameters),
                    },
                }
                for t in a.tools
            ],
            "tool_choice": tool_choice,
            "max_iterations": a.max_iterations,
            "max_tokens": a.sampling.max_tokens,
        }
