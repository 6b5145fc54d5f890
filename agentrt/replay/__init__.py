"""agentrt.replay — replaying agent workloads through the orchestrator, and their metrics.

Three rooms, imported one way (``run`` reads ``trace`` and writes ``report``; ``trace`` and
``report`` import neither of the others):

- ``trace/`` — the canonical trace format ("agentrt-trace/1", JSON Lines), its importers
  (WEKA Claude Code sessions, Mooncake, Sutradhara SWE-bench), the synthetic web-search
  generator and arrival processes;
- ``run/`` — running a replay: the plan, forced outputs, replay tools and engine, and the
  driver (every request a real agent run, per mode and load);
- ``report/`` — the records a run produces per agent request, the metrics computed from
  them, and the report writer.

This module's ``__all__`` is the public surface. ``agentrt replay`` (``agentrt.cli._replay``)
is its command line.
"""

from __future__ import annotations

from agentrt.engine._machine import machine_info

from .report._metrics import (
    LoadAtTarget,
    fluidity_index,
    load_at_target,
    percentile,
    theoretical_max_hits,
)
from .report._records import CallKind, CallRecord, RequestRecord, ToolRecord
from .report._report import ReportFiles, write_report
from .report._results import CONTROL_MODE, Ratio, ReplayRun, TargetRow, target_table
from .report._summary import RunSummary, summarize
from .run._driver import Deadlines, default_ftr_target, replay_all, replay_run
from .run._layout import ForcedOutput, LayoutError
from .run._plan import PlanStats, ReplayPlan, RequestPlan, build_plan
from .run._replay_engine import ReplayEngine, ReplayMismatchError
from .run._replay_tools import ToolReply, replay_tools
from .run._sources import (
    MODE_NAMES,
    EngineSource,
    Load,
    PoissonLoad,
    RecordedLoad,
    ReplayMode,
    ScriptedSource,
    SharedSource,
    mode_switches,
    replay_mode,
)
from .run._vocab import StableVocab, VocabularyError, stable_vocab
from .trace._arrivals import (
    assign_arrivals,
    poisson_arrivals,
    recorded_arrivals,
    with_poisson_arrivals,
)
from .trace._import_mooncake import import_mooncake
from .trace._import_swe import import_swe
from .trace._import_weka import import_weka
from .trace._importers import TraceImportError
from .trace._schema import (
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
from .trace._synthetic import SyntheticConfig, generate_synthetic
from .trace._tokens import content_token_ids
from .trace._trace import Trace, TraceError, dump_trace, load_trace

__all__ = [
    "CONTROL_MODE",
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
    "ReplayMode",
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
    "replay_mode",
    "replay_run",
    "replay_tools",
    "stable_vocab",
    "summarize",
    "target_table",
    "theoretical_max_hits",
    "with_poisson_arrivals",
    "write_report",
]
