"""Agents by name: the built-in ones, and user agents named ``package.module:attribute``.

Used by ``agentrt run`` and by the REST server's agent registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from agentrt.engine import SamplingOptions
from agentrt.tools import calculator

from ._agent import Agent


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
        raise ValueError(f"agent spec {spec!r}: expected 'package.module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(
                f"agent spec {spec!r}: {module_name} has no attribute {attr!r}"
            ) from None
    if callable(obj) and not isinstance(obj, Agent):
        obj = obj()
    agents = [obj] if isinstance(obj, Agent) else list(obj) if isinstance(obj, Iterable) else None
    if agents is None or not all(isinstance(a, Agent) for a in agents):
        raise ValueError(
            f"agent spec {spec!r}: expected an Agent or a list of Agents, got {type(obj).__name__}"
        )
    return agents
