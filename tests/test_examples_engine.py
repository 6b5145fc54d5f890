"""Every example agent (``make demo`` runs ``units_agent.py``) answers its own question.

Each example module is imported (its ``__main__`` block, which starts an embedded engine of
its own, does not run) and its agent runs on the session's shared engine, then the
example's ``report`` prints it, as the script would. The file and research agents get two
LLM calls instead of three (the tool call and one answer): decoding is slow on CPU.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from agentrt import Agent, ToolOk
from agentrt.engine import Engine

pytestmark = [pytest.mark.anyio, pytest.mark.engine]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "agents"


def load_example(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(EXAMPLES))  # the examples import their _common helper
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def on(engine: Engine, agent: Agent, **changes: object) -> Agent:
    return dataclasses.replace(agent, engine=engine, **changes)


def test_every_example_is_covered() -> None:
    found = {p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert found == {"units_agent", "file_analyst", "research_assistant"}


async def test_the_demo_units_agent_converts_with_the_calculator(
    vllm_engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    example = load_example("units_agent", monkeypatch)
    result = await on(vllm_engine, example.agent).run(example.QUESTION)
    example.report(example.QUESTION, result)

    first = result.tool_spans[0]
    assert first.name == "calculator" and isinstance(first.result, ToolOk)
    assert "26.09" in first.result.content  # 42 km = 26.0976 mi
    assert result.status == "completed" and result.final_text
    out = capsys.readouterr().out
    assert f"Q: {example.QUESTION}" in out and "tool calculator:" in out and "FTR " in out


async def test_the_file_analyst_searches_its_folder(
    vllm_engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    example = load_example("file_analyst", monkeypatch)
    agent = example.make_agent(example.DEFAULT_FOLDER)
    result = await on(vllm_engine, agent, max_iterations=2).run(example.QUESTION)
    example.report(example.QUESTION, result)

    # The search ran and its result (on this small model, often an error about the pattern
    # it wrote) went back to the model as the next message.
    first = result.tool_spans[0]
    assert first.name == "search_files"
    assert result.messages[3].role == "tool"
    assert result.messages[3].content == first.result.content
    assert result.status in ("completed", "max_iterations")
    assert "tool search_files:" in capsys.readouterr().out


async def test_the_research_assistant_calls_its_city_service(
    vllm_engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    example = load_example("research_assistant", monkeypatch)
    result = await on(vllm_engine, example.agent, max_iterations=2).run(example.QUESTION)
    example.report(example.QUESTION, result)

    # tool_choice="required": the first response calls the city service (or the
    # calculator), and every result goes back to the model as a tool message.
    spans = result.iterations[0].tools
    assert spans and {s.name for s in spans} <= {"city_facts", "calculator"}
    tool_messages = [m.content for m in result.messages if m.role == "tool"]
    assert tool_messages == [s.result.content for s in spans]
    assert result.status in ("completed", "max_iterations")
    assert "tool " in capsys.readouterr().out
