"""The differential suite's servers and report: vLLM's own OpenAI server and ``agentrt
serve`` on the same model and engine settings (as ``agentrt bench frameworks`` starts
them), each started once per session. Opt-in: only ``-m conformance`` runs these tests
(``make conformance``); they start two engines, so run them under the engine lock.
``AGENTRT_CONFORMANCE_ARGS`` adds ``agentrt serve`` flags (e.g. ``--parallel-unset one``)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentrt.bench._servers import ServerSettings, agentrt_argv, free_port, launched, vllm_argv

SERVERS = ("vllm", "agentrt")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "conformance" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="differential suite: run with -m conformance")
    for item in items:
        if "conformance" in item.keywords:
            item.add_marker(skip)


class Report:
    """Rows of the comparison, written as JSON and a Markdown table at the session's end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def write(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "conformance.json").write_text(json.dumps(self.rows, indent=1))
        lines = [
            "| case | kind | mode | vLLM finish / calls / out tok "
            "| agentrt finish / calls / out tok | differences |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            v, a = r["vllm"], r["agentrt"]
            lines.append(
                f"| {r['case']} | {r['kind']} | {r['mode']} "
                f"| {v['finish']} / {len(v['calls'])} / {v['out']} "
                f"| {a['finish']} / {len(a['calls'])} / {a['out']} "
                f"| {', '.join(r['differences']) or '-'} |"
            )
        path = self.folder / "conformance.md"
        path.write_text("\n".join(lines) + "\n")
        return path


@pytest.fixture(scope="session")
def report() -> Iterator[Report]:
    rep = Report(Path("runs") / f"conformance-{time.strftime('%Y%m%d-%H%M%S')}")
    yield rep
    if rep.rows:
        print(f"\nconformance table: {rep.write()}")


@pytest.fixture(scope="session")
def clients(report: Report) -> Iterator[dict[str, httpx.Client]]:
    settings = ServerSettings()
    extra = shlex.split(os.environ.get("AGENTRT_CONFORMANCE_ARGS", ""))
    report.folder.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        out: dict[str, httpx.Client] = {}
        for name in SERVERS:
            port = free_port()
            if name == "vllm":
                argv, env = vllm_argv(settings, port)
            else:
                argv, env = agentrt_argv(settings, port, extra)
            url = stack.enter_context(launched(argv, env, port, log=report.folder / f"{name}.log"))
            out[name] = stack.enter_context(httpx.Client(base_url=url, timeout=300))
        yield out
