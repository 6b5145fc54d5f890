"""Tracing set-up: nothing imported or changed without a provider or without the SDK; a
global SDK provider is used; ``OTEL_*`` exports over OTLP; ``agentrt run --trace-file``."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentrt._otel_sdk import exporter_names
from agentrt._tracing import otel_env_requested

AGENT_MODULE = '''
import json, anyio
from agentrt import Agent, tool
from agentrt.engine import ScriptedEngine, TimingModel

@tool(expected_latency_s=0.05)
async def search(q: str) -> str:
    """Search.

    Args:
        q: the query
    """
    await anyio.sleep(0.05)
    return "results for " + q

def call(q):
    body = json.dumps({"name": "search", "arguments": {"q": q}})
    return "<tool_call>\\n" + body + "\\n</tool_call>"

def make():
    engine = ScriptedEngine(
        [call("a") + "\\n" + call("b"), "Both found."],
        timing=TimingModel(decode_step_s=0.0005),
        block_size=16,
    )
    return Agent(name="searcher", tools=[search], engine=engine, constrain_calls=False)

agent = make()
'''

# The span names of one run of the module above, sorted.
RUN_SPANS = [
    "chat scripted",
    "chat scripted",
    "execute_tool search",
    "execute_tool search",
    "invoke_agent searcher",
    "split_prefill scripted",
]

# Makes every opentelemetry module unimportable, as on a machine without it.
HIDE_OTEL = """
import sys
class _Hide:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, _Hide())
"""

RUN_AND_REPORT = """
import json, sys, anyio
from scripted_agent import make
result = anyio.run(make().run, "Find a and b.")
otel = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
print(json.dumps({"otel": otel, "trace_id": result.trace_id, "final": result.final_text}))
"""


@pytest.fixture
def agent_path(tmp_path: Path) -> Path:
    (tmp_path / "scripted_agent.py").write_text(AGENT_MODULE, encoding="utf-8")
    return tmp_path


def python(code: str, path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full = {**clean, "PYTHONPATH": str(path), **env}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120
    )


def cli(args: list[str], path: Path, *, hide: bool = False, **env: str) -> Any:
    code = ("" if not hide else HIDE_OTEL) + (
        f"import sys\nfrom agentrt.cli import main\nsys.exit(main({args!r}))\n"
    )
    return python(code, path, **env)


def test_an_untraced_run_imports_no_opentelemetry(agent_path: Path) -> None:
    out = python(RUN_AND_REPORT, agent_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"otel": [], "trace_id": None, "final": "Both found."}


def test_without_the_sdk_runs_are_unchanged(agent_path: Path) -> None:
    out = python(HIDE_OTEL + RUN_AND_REPORT, agent_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"otel": [], "trace_id": None, "final": "Both found."}


def test_without_the_sdk_the_cli_says_why_it_does_not_trace(agent_path: Path) -> None:
    run = ["run", "--agent", "scripted_agent:agent", "Find a and b."]
    asked = cli(run, agent_path, hide=True, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert asked.returncode == 0 and "A: Both found." in asked.stdout
    assert "OpenTelemetry SDK is missing" in asked.stderr
    to_file = cli([*run, "--trace-file", "t.json"], agent_path, hide=True)
    assert to_file.returncode != 0
    assert "--trace-file needs the OpenTelemetry SDK" in to_file.stderr


def test_a_global_sdk_provider_set_by_the_application_is_used(agent_path: Path) -> None:
    code = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
""" + RUN_AND_REPORT.replace(
        "print(", "print(sorted(s.name for s in exporter.get_finished_spans()));print("
    )
    out = python(code, agent_path)
    assert out.returncode == 0, out.stderr
    names, report = out.stdout.strip().splitlines()
    assert ast.literal_eval(names) == RUN_SPANS
    assert len(json.loads(report)["trace_id"]) == 32


def test_run_trace_file_writes_otlp_json_and_prints_the_tree(
    agent_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "out.json"
    args = ["run", "--agent", "scripted_agent:agent", "Go.", "--trace-file", str(path)]
    out = cli(args, agent_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(path.read_text(encoding="utf-8"))
    (resource,) = doc["resourceSpans"]
    service = {a["key"]: a["value"] for a in resource["resource"]["attributes"]}["service.name"]
    assert service == {"stringValue": "agentrt"}
    spans = [s for scope in resource["scopeSpans"] for s in scope["spans"]]
    assert len(spans) == 6
    trace_ids = {s["traceId"] for s in spans}
    (trace_id,) = trace_ids
    assert len(trace_id) == 32 and int(trace_id, 16) > 0  # hex, as OTLP/JSON wants
    root = next(s for s in spans if s["name"] == "invoke_agent searcher")
    assert root["kind"] == 1 and "parentSpanId" not in root  # INTERNAL, as an integer
    assert all(s["parentSpanId"] == root["spanId"] for s in spans if s is not root)
    lines = out.stdout.splitlines()
    assert f"trace {trace_id} -> {path}" in lines
    tree = lines[lines.index(f"trace {trace_id} -> {path}") + 1 :]
    assert [line.split("  ")[0].rstrip() for line in tree] == [
        "invoke_agent searcher",
        "├─ chat scripted",
        "├─ execute_tool search",
        "├─ execute_tool search",
        "├─ split_prefill scripted",
        "└─ chat scripted",
    ]


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP traces receiver: keeps each request's decoded spans."""

    received: ClassVar[list[ExportTraceServiceRequest]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(body)
        self.received.append(msg)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    received: list[ExportTraceServiceRequest] = []
    _Collector.received = received
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_otel_variables_export_the_runs_spans_over_otlp(
    agent_path: Path, collector: tuple[str, list[ExportTraceServiceRequest]]
) -> None:
    url, received = collector
    out = cli(
        ["run", "--agent", "scripted_agent:agent", "Go."],
        agent_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=url,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_SERVICE_NAME="my-agents",
    )
    assert out.returncode == 0, out.stderr
    spans = [
        (rs.resource, s.name)
        for msg in received
        for rs in msg.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
    assert sorted(name for _, name in spans) == RUN_SPANS
    services = {
        a.value.string_value for r, _ in spans for a in r.attributes if a.key == "service.name"
    }
    assert services == {"my-agents"}


@pytest.mark.parametrize(
    ("env", "asked", "names"),
    [
        ({}, False, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, True, ["otlp_proto_grpc"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True, None),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            True,
            ["otlp_proto_http"],
        ),
        ({"OTEL_TRACES_EXPORTER": "console,otlp"}, True, ["console", "otlp_proto_grpc"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, False, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, False, []),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, False, []),
    ],
)
def test_which_variables_ask_for_export(
    env: dict[str, str], asked: bool, names: list[str] | None
) -> None:
    assert otel_env_requested(env) is asked
    if names is not None:
        assert exporter_names(env) == names
