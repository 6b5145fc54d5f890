"""agentrt.replay — trace data and metrics for replaying agent workloads.

The canonical trace format ("agentrt-trace/1", JSON Lines) and its importers (WEKA
Claude Code sessions, Mooncake, Sutradhara SWE-bench, a synthetic web-search agent),
arrival processes, the records a replay driver produces per agent request, the metrics
computed from them, and the report writer.
"""

from __future__ import annotations

from ._arrivals import assign_arrivals, poisson_arrivals, recorded_arrivals, with_poisson_arrivals
from ._import_mooncake import import_mooncake
from ._import_swe import import_swe
from ._import_weka import import_weka
from ._importers import TraceImportError
from ._metrics import (
    LoadAtTarget,
    fluidity_index,
    load_at_target,
    percentile,
    theoretical_max_hits,
)
from ._records import CallKind, CallRecord, RequestRecord, ToolRecord
from ._report import ReportFiles, machine_info, write_report
from ._results import Ratio, ReplayRun, TargetRow, target_table
from ._schema import (
    SCHEMA_ID,
    Call,
    Content,
    TextContent,
    TokenContent,
    ToolCall,
    TraceHeader,
    TraceRequest,
    TraceRequestId,
)
from ._summary import RunSummary, summarize
from ._synthetic import SyntheticConfig, generate_synthetic
from ._tokens import content_token_ids
from ._trace import Trace, TraceError, dump_trace, load_trace

__all__ = [
    "SCHEMA_ID",
    "Call",
    "CallKind",
    "CallRecord",
    "Content",
    "LoadAtTarget",
    "Ratio",
    "ReplayRun",
    "ReportFiles",
    "RequestRecord",
    "RunSummary",
    "SyntheticConfig",
    "TargetRow",
    "TextContent",
    "TokenContent",
    "ToolCall",
    "ToolRecord",
    "Trace",
    "TraceError",
    "TraceHeader",
    "TraceImportError",
    "TraceRequest",
    "TraceRequestId",
    "assign_arrivals",
    "content_token_ids",
    "dump_trace",
    "fluidity_index",
    "generate_synthetic",
    "import_mooncake",
    "import_swe",
    "import_weka",
    "load_at_target",
    "load_trace",
    "machine_info",
    "percentile",
    "poisson_arrivals",
    "recorded_arrivals",
    "summarize",
    "target_table",
    "theoretical_max_hits",
    "with_poisson_arrivals",
    "write_report",
]
