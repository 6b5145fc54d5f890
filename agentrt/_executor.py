"""Running tool calls: argument validation, timeouts, errors returned to the model.

Every call resolves to a tagged result: ``ToolOk`` or ``ToolError`` (with a reason).
Nothing a tool or the model does can crash the run; cancellation of the run still
propagates (a cancelled run cancels its tools).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NewType

import anyio

from agentrt.engine._clock import now
from agentrt.tools import InvalidArguments, LatencyTracker, Tool, ToolFailure, ValidArguments

from ._parsers import MalformedCall, ParsedCall

ToolCallId = NewType("ToolCallId", str)

ErrorReason = Literal[
    "malformed", "unknown_tool", "invalid_arguments", "refused", "exception", "timeout"
]


@dataclass(frozen=True, slots=True)
class ToolOk:
    """A call that returned; ``content`` is what the model reads."""

    call_id: ToolCallId
    name: str
    content: str
    kind: Literal["ok"] = "ok"


@dataclass(frozen=True, slots=True)
class ToolError:
    """A call that failed; the model reads ``content`` and may try again."""

    call_id: ToolCallId
    name: str
    reason: ErrorReason
    message: str
    kind: Literal["error"] = "error"

    @property
    def content(self) -> str:
        return f"Error ({self.reason}): {self.message}"


ToolResult = ToolOk | ToolError


@dataclass(frozen=True, slots=True)
class ToolSpan:
    """When one call ran (monotonic seconds) and how it ended."""

    call_id: ToolCallId
    name: str
    detected_t: float
    start_t: float
    end_t: float
    result: ToolResult

    @property
    def duration_s(self) -> float:
        return self.end_t - self.start_t


_SHARED_LATENCY = LatencyTracker()


def shared_latency_tracker() -> LatencyTracker:
    """The process-wide tracker: every agent learns from every run's tool timings."""
    return _SHARED_LATENCY


class ToolExecutor:
    """Runs calls against a fixed set of tools.

    Args:
        tools: the agent's tools (names must be unique).
        latency: learns each tool's duration (for split-prefill TTLs).
        default_timeout_s: limit for tools that set none (None: no limit).
    """

    def __init__(
        self,
        tools: Sequence[Tool],
        latency: LatencyTracker | None = None,
        default_timeout_s: float | None = None,
    ) -> None:
        self.tools: dict[str, Tool] = {}
        for t in tools:
            if t.name in self.tools:
                raise ValueError(f"two tools are named {t.name!r}")
            self.tools[t.name] = t
        self.latency = latency or LatencyTracker()
        self.default_timeout_s = default_timeout_s

    def check(
        self, call: ParsedCall | MalformedCall, call_id: ToolCallId
    ) -> ToolError | ValidArguments:
        """The error a call gets without running, or its validated arguments."""
        if isinstance(call, MalformedCall):
            return ToolError(call_id, "", "malformed", call.error)
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return ToolError(
                call_id,
                call.name,
                "unknown_tool",
                f"there is no tool named {call.name!r} (available: {known})",
            )
        checked = tool.validate(call.arguments)
        if isinstance(checked, InvalidArguments):
            return ToolError(call_id, call.name, "invalid_arguments", checked.message)
        return checked

    def expected_latency(self, names: Sequence[str]) -> float:
        """How long a batch of concurrent calls should take: the slowest one's estimate."""
        return float(self.latency.expected_batch([self.tools.get(n, n) for n in names]))

    async def run(
        self, call: ParsedCall | MalformedCall, call_id: ToolCallId, detected_t: float
    ) -> ToolSpan:
        """Validate and run one call; always returns (errors become ``ToolError``)."""
        start = now()
        name = call.name if isinstance(call, ParsedCall) else ""
        checked = self.check(call, call_id)
        if isinstance(checked, ToolError):
            return ToolSpan(call_id, name, detected_t, start, now(), checked)
        assert isinstance(call, ParsedCall)
        tool = self.tools[call.name]
        result = await self._invoke(tool, checked, call_id)
        end = now()
        if result.kind == "ok":
            self.latency.record(tool.name, end - start)
        return ToolSpan(call_id, name, detected_t, start, end, result)

    async def _invoke(self, tool: Tool, args: ValidArguments, call_id: ToolCallId) -> ToolResult:
        limit = tool.timeout_s if tool.timeout_s is not None else self.default_timeout_s
        try:
            with anyio.fail_after(limit):
                content = await tool.call(args)
        except TimeoutError:
            return ToolError(
                call_id, tool.name, "timeout", f"tool {tool.name!r} took longer than {limit:g} s"
            )
        except ToolFailure as exc:
            return ToolError(call_id, tool.name, "refused", str(exc))
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # a tool's own bug must not end the run
            return ToolError(call_id, tool.name, "exception", f"{type(exc).__name__}: {exc}")
        return ToolOk(call_id, tool.name, content)
