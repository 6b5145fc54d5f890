"""agentrt.replay — replaying agent workloads through the orchestrator, and their metrics.

The canonical trace format ("agentrt-trace/1", JSON Lines) and its importers (WEKA
Claude Code sessions, Mooncake, Sutradhara SWE-bench, a synthetic web-search agent),
arrival processes, the replay driver (every request a real agent run with forced outputs
and replay tools, per mode and load), the records it produces per agent request, the
metrics computed from them, and the report writer. ``agentrt replay`` is its CLI.
"""

from __future__ import annotations

from ._arrivals import assign_arrivals, poisson_arrivals, recorded_arrivals, with_poisson_arrivals
from ._driver import Deadlines, default_ftr_target, replay_all, replay_run
from ._import_mooncake import import_mooncake
from ._import_swe import import_swe
from ._import_weka import import_weka
from ._importers import TraceImportError
from ._layout import ForcedOutput, LayoutError
from ._metrics import (
    LoadAtTarget,
    fluidity_index,
    load_at_target,
    percentile,
    theoretical_max_hits,
)
from ._plan import PlanStats, ReplayPlan, RequestPlan, build_plan
from ._records import CallKind, CallRecord, RequestRecord, ToolRecord
from ._replay_engine import ReplayEngine, ReplayMismatchError
from ._replay_tools import ToolReply, replay_tools
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
from ._sources import (
    MODE_NAMES,
    EngineSource,
    Load,
    PoissonLoad,
    RecordedLoad,
    ScriptedSource,
    SharedSource,
    mode_switches,
)
from ._summary import RunSummary, summarize
from ._synthetic import SyntheticConfig, generate_synthetic
from ._tokens import content_token_ids
from ._trace import Trace, TraceError, dump_trace, load_trace
from ._vocab import StableVocab, VocabularyError, stable_vocab

__all__ = [
    "MODE_NAMES",
    "SCHEMA_ID",
    "Call",
    "CallKind",
    "CallRecord",
    "Content",
    "Deadlines",
    "EngineSource",
    "ForcedOutput",
    "LayoutError",
    "Load",
    "LoadAtTarget",
    "PlanStats",
    "PoissonLoad",
    "Ratio",
    "RecordedLoad",
    "ReplayEngine",
    "ReplayMismatchError",
    "ReplayPlan",
    "ReplayRun",
    "ReportFiles",
    "RequestPlan",
    "RequestRecord",
    "RunSummary",
    "ScriptedSource",
    "SharedSource",
    "StableVocab",
    "SyntheticConfig",
    "TargetRow",
    "TextContent",
    "TokenContent",
    "ToolCall",
    "ToolRecord",
    "ToolReply",
    "Trace",
    "TraceError",
    "TraceHeader",
    "TraceImportError",
    "TraceRequest",
    "TraceRequestId",
    "VocabularyError",
    "assign_arrivals",
    "build_plan",
    "content_token_ids",
    "default_ftr_target",
    "dump_trace",
    "fluidity_index",
    "generate_synthetic",
    "import_mooncake",
    "import_swe",
    "import_weka",
    "load_at_target",
    "load_trace",
    "machine_info",
    "mode_switches",
    "percentile",
    "poisson_arrivals",
    "recorded_arrivals",
    "replay_all",
    "replay_run",
    "replay_tools",
    "stable_vocab",
    "summarize",
    "target_table",
    "theoretical_max_hits",
    "with_poisson_arrivals",
    "write_report",
]
