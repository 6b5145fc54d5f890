"""The agents a server runs: loaded from ``pkg.module:attr`` or built in, bound to the engine.

An agent that names no engine runs on the server's; each API key's ``cache_salt`` is
mixed into the agent's, so two tenants' runs never share KV cache.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterable
from typing import Any

from agentrt import Agent, SamplingOptions
from agentrt.engine import Engine
from agentrt.tools import calculator

from ._auth import ApiKey
from ._errors import APIError


def calculator_agent(*, max_tokens: int = 96, max_iterations: int = 3) -> Agent:
    """The built-in ``calculator`` agent: calls the calculator tool, then answers.

    ``tool_choice="required"`` makes the first response a well-formed call even on a
    tiny model; the answer after the result is free text.
    """
    return Agent(
        name="calculator",
        instructions="You are a calculator. Call the calculator tool with the expression, "
        "then state the result in one short sentence.",
        tools=[calculator],
        tool_choice="required",
        max_iterations=max_iterations,
        sampling=SamplingOptions(max_tokens=max_tokens, temperature=0.0),
    )


BUILTIN_AGENTS: dict[str, Callable[[], Agent]] = {"calculator": calculator_agent}


def load_agents(spec: str) -> list[Agent]:
    """Agents named by ``pkg.module:attr``: an ``Agent``, an iterable of them, or a
    zero-argument callable returning either.

    Raises:
        ValueError: the spec is malformed, or the attribute holds something else.
        ImportError: the module cannot be imported.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--agents {spec!r}: expected 'package.module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(
                f"--agents {spec!r}: {module_name} has no attribute {attr!r}"
            ) from None
    if callable(obj) and not isinstance(obj, Agent):
        obj = obj()
    agents = [obj] if isinstance(obj, Agent) else list(obj) if isinstance(obj, Iterable) else None
    if agents is None or not all(isinstance(a, Agent) for a in agents):
        raise ValueError(
            f"--agents {spec!r}: expected an Agent or a list of Agents, got {type(obj).__name__}"
        )
    return agents


class AgentRegistry:
    """Agents by name, each bound to the server's engine unless it names its own."""

    def __init__(self, agents: Iterable[Agent], engine: Engine) -> None:
        self._agents: dict[str, Agent] = {}
        for a in agents:
            if a.name in self._agents:
                raise ValueError(f"two agents are named {a.name!r}; agent names must be unique")
            self._agents[a.name] = (
                a if a.engine is not None else dataclasses.replace(a, engine=engine)
            )
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
