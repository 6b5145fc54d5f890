"""OpenTelemetry SDK set-up for agentrt's own programs: export as the ``OTEL_*`` variables
say, and record one run's spans into an OTLP/JSON file (``agentrt run --trace-file``).

A library only uses the API and leaves the SDK to the application; the ``agentrt``
command line is an application, so it configures the SDK here, the way the SDK's own
auto-configuration would: exporters named by ``OTEL_TRACES_EXPORTER`` (entry points of
the ``opentelemetry_traces_exporter`` group: ``otlp``, ``console``, ``otlp_proto_http``,
...), batched; ``otlp`` is gRPC unless ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` is
``http/protobuf`` (gRPC is also what ``opentelemetry-instrument`` and vLLM pick); the
sampler, resource, endpoints and headers come from the SDK and exporters themselves.
Importing this module needs ``opentelemetry-sdk`` (the ``otel`` extra).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import orjson
from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ._tracing import otel_env_requested


def exporter_names(env: Mapping[str, str] = os.environ) -> list[str]:
    """Entry-point names of the span exporters the variables ask for (none: [])."""
    if not otel_env_requested(env):
        return []
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"
    )
    http = protocol.strip().lower() == "http/protobuf"
    return [("otlp_proto_http" if http else "otlp_proto_grpc") if n == "otlp" else n for n in names]


def _exporter(name: str) -> SpanExporter:
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        raise ValueError(
            f"OTEL_TRACES_EXPORTER: no span exporter named {name!r} is installed "
            "(install agentrt[otel] for otlp)"
        )
    exporter: SpanExporter = next(iter(found)).load()()
    return exporter


def sdk_provider() -> TracerProvider:
    """The global SDK tracer provider, installed (with agentrt's resource) if none is."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "agentrt"}))
    provider = TracerProvider(resource=resource)
    trace.set_tracer_provider(provider)
    return provider


def configure_from_env(env: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """Export agentrt's spans as ``OTEL_*`` asks (None: it asks for nothing).

    An SDK provider already installed (by ``opentelemetry-instrument``, say) is kept and
    left as configured: it exports already.

    Raises:
        ValueError: an exporter named in ``OTEL_TRACES_EXPORTER`` is not installed.
    """
    names = exporter_names(env)
    if not names:
        return None
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return None
    exporters = [_exporter(n) for n in names]  # all found before anything is installed
    provider = sdk_provider()
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class TraceFile:
    """Keeps every span agentrt's provider ends from now on, to write them as OTLP/JSON.

    Spans still go wherever else the provider sends them (a collector, with ``OTEL_*``).
    """

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self._exporter = InMemorySpanExporter()
        (provider or sdk_provider()).add_span_processor(SimpleSpanProcessor(self._exporter))

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return self._exporter.get_finished_spans()

    def write(self, path: str | Path, trace_id: str | None = None) -> dict[str, Any]:
        """Write the spans kept so far (only ``trace_id``'s, if given) to ``path``; returns
        the document written."""
        spans = [
            s
            for s in self.spans
            if trace_id is None or trace.format_trace_id(s.context.trace_id) == trace_id
        ]
        doc = otlp_json(spans)
        Path(path).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        return doc


_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})


def otlp_json(spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> dict[str, Any]:
    """Spans as an OTLP/JSON ``ExportTraceServiceRequest`` (what a collector's file
    exporter writes and OTLP/HTTP JSON carries: ids in hex, enums as integers)."""
    doc: dict[str, Any] = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    _hex_ids(doc)
    return doc


def _hex_ids(node: Any) -> None:
    # protobuf's JSON mapping writes bytes as base64; OTLP/JSON wants trace and span ids
    # as hex strings.
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)
