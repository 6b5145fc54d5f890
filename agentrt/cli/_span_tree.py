"""An OTLP/JSON trace document as a printed tree: one line per span, children indented.

    invoke_agent calculator     +0.000s  2.466s  status=completed ftr=2.416s in=1406 ...
    ├─ chat SmolLM2-135M        +0.000s  1.954s  in=584 cached=0 out=138 ttft=0.584s ...
    ├─ execute_tool calculator  +1.454s  0.500s  under_decode=0.500s under_prefill=0.000s

Times are offsets from the first span's start and durations; the attributes shown are
the few that say where a run's time went. Works on any OTLP/JSON file (spans whose
parent is not in the file are roots).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# attribute -> short label, in the order they are shown
SHOWN = {
    "agentrt.run.status": "status",
    "agentrt.run.ftr_s": "ftr",
    "agentrt.run.e2e_s": "e2e",
    "gen_ai.usage.input_tokens": "in",
    "gen_ai.usage.cache_read.input_tokens": "cached",
    "gen_ai.usage.output_tokens": "out",
    "gen_ai.response.time_to_first_chunk": "ttft",
    "agentrt.request.queue_s": "queue",
    "gen_ai.response.finish_reasons": "finish",
    "agentrt.tool_calls": "calls",
    "gen_ai.tool.call.id": "call",
    "agentrt.tool.overlap.decode_s": "under_decode",
    "agentrt.tool.overlap.split_prefill_s": "under_prefill",
    "agentrt.split_prefill.outcome": "outcome",
    "error.type": "error",
}
_SECONDS = frozenset({"gen_ai.response.time_to_first_chunk"})


@dataclass(frozen=True, slots=True)
class _Span:
    span_id: str
    parent: str
    name: str
    start_ns: int
    end_ns: int
    attrs: Mapping[str, Any]


def _value(v: Mapping[str, Any]) -> Any:
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    if "intValue" in v:
        return int(v["intValue"])  # int64 travels as a string in OTLP/JSON
    for key in ("stringValue", "doubleValue", "boolValue"):
        if key in v:
            return v[key]
    return None


def spans_of(doc: Mapping[str, Any]) -> list[_Span]:
    """Every span of an OTLP/JSON ``ExportTraceServiceRequest``."""
    out = []
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                attrs = {a["key"]: _value(a.get("value", {})) for a in s.get("attributes", [])}
                out.append(
                    _Span(
                        s["spanId"],
                        s.get("parentSpanId", ""),
                        s["name"],
                        int(s["startTimeUnixNano"]),
                        int(s["endTimeUnixNano"]),
                        attrs,
                    )
                )
    return out


def _show(key: str, value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.3f}s" if key.endswith("_s") or key in _SECONDS else f"{value:.3g}"
    return str(value)


def span_tree(doc: Mapping[str, Any]) -> str:
    """The spans of ``doc`` as an indented tree (empty string when there are none)."""
    spans = spans_of(doc)
    if not spans:
        return ""
    ids = {s.span_id for s in spans}
    children: dict[str, list[_Span]] = {}
    for s in spans:
        children.setdefault(s.parent if s.parent in ids else "", []).append(s)
    for group in children.values():
        group.sort(key=lambda s: (s.start_ns, s.end_ns))
    t0 = min(s.start_ns for s in spans)

    def walk(parent: str, prefix: str) -> Iterator[tuple[str, _Span]]:
        group = children.get(parent, [])
        for k, s in enumerate(group):
            last = k == len(group) - 1
            head = "" if not prefix and parent == "" else ("└─ " if last else "├─ ")
            yield prefix + head, s
            more = "" if parent == "" and not prefix else ("   " if last else "│  ")
            yield from walk(s.span_id, prefix + more)

    rows = list(walk("", ""))
    width = max(len(lead) + len(s.name) for lead, s in rows)
    lines = []
    for lead, s in rows:
        shown = " ".join(
            f"{label}={_show(key, s.attrs[key])}" for key, label in SHOWN.items() if key in s.attrs
        )
        when = f"+{(s.start_ns - t0) / 1e9:.3f}s {(s.end_ns - s.start_ns) / 1e9:7.3f}s"
        lines.append(f"{(lead + s.name).ljust(width)}  {when}  {shown}".rstrip())
    return "\n".join(lines)
