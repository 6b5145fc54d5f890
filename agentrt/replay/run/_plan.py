"""A replay plan: a trace turned into what the orchestrator and the engine need per request.

Per request: the system text (the agent's instructions), the turns (the query, then each
``extra_input`` that follows a call without tool calls), the forced output of every LLM
call, and the reply of every tool call. The plan depends only on the trace, the
tokenizer, the seed and the tool factor, so every mode and load replays the same tokens.

Token content becomes stable-vocabulary text (``_vocab``) through ``content_token_ids``
with one key per content (``<request id>/calls.2.output``); a system prompt without hash
ids is keyed by its group, so a group's requests share it exactly. A call's ``gap_s``
is slept before its turn starts, or, after tool calls, by those tools (``_replay_tools``).
An ``extra_input`` the agent loop cannot take as a new turn is folded into what the agent
reads anyway, and counted in ``PlanStats``: on the first call it is appended to the query;
after a call that made tool calls, to that call's last tool result (a turn takes no user
message between a tool result and the next call).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field

from agentrt._parsers import ParsedCall
from agentrt.engine import ChatTokenizer

from ..trace._schema import Content, TextContent, TokenContent, TraceRequest
from ..trace._tokens import content_token_ids
from ..trace._trace import Trace
from ._layout import (
    ForcedOutput,
    LayoutError,
    PlannedCall,
    call_positions,
    text_output,
    token_output,
)
from ._replay_tools import ToolReply
from ._vocab import StableVocab, stable_vocab


@dataclass(frozen=True, slots=True)
class Turn:
    """One ``Session.run``: the user message, the wait before it, and its LLM calls."""

    message: str
    gap_s: float
    n_calls: int


@dataclass(frozen=True, slots=True)
class RequestPlan:
    """One agent request of the trace, ready to run."""

    index: int
    request_id: str
    arrival_s: float
    system: str
    turns: tuple[Turn, ...]
    outputs: tuple[ForcedOutput, ...]

    @property
    def n_calls(self) -> int:
        return len(self.outputs)


@dataclass(frozen=True, slots=True)
class PlanStats:
    """How far the replay departs from the trace (reports state these counts)."""

    outputs: int = 0
    lengthened_outputs: int = 0
    added_output_tokens: int = 0
    shifted_calls: int = 0
    neutralized_tags: int = 0
    folded_inputs: int = 0


@dataclass(frozen=True)
class ReplayPlan:
    """Everything a replay of one trace needs, for any mode and load."""

    requests: tuple[RequestPlan, ...]
    replies: Mapping[str, ToolReply]
    tool_names: tuple[str, ...]
    seed: int
    tool_factor: float
    stats: PlanStats = field(default_factory=PlanStats)

    @property
    def max_output_tokens(self) -> int:
        return max((len(o.ids) for r in self.requests for o in r.outputs), default=1)


def build_plan(
    trace: Trace, tokenizer: ChatTokenizer, *, seed: int = 0, tool_factor: float = 1.0
) -> ReplayPlan:
    """Turn ``trace`` into forced outputs, turn messages and tool replies.

    Args:
        trace: the requests to replay (arrivals are taken from it as given).
        tokenizer: the engine's tokenizer (outputs are token ids of this model).
        seed: orders the stable vocabulary, so a different seed gives other tokens.
        tool_factor: recorded tool latencies are multiplied by this.

    Raises:
        ValueError: a bad factor; ``LayoutError`` when a text output's tool calls do not
            match the trace.
    """
    if not tool_factor >= 0:
        raise ValueError(f"tool_factor must be >= 0, got {tool_factor!r}")
    builder = _Builder(trace, tokenizer, stable_vocab(tokenizer).shuffled(seed), tool_factor)
    requests = tuple(builder.request(i, r) for i, r in enumerate(trace.requests))
    names = sorted({tc.name for r in trace.requests for c in r.calls for tc in c.tool_calls})
    return ReplayPlan(
        requests, dict(builder.replies), tuple(names), seed, tool_factor, builder.stats()
    )


class _Builder:
    def __init__(
        self, trace: Trace, tok: ChatTokenizer, vocab: StableVocab, tool_factor: float
    ) -> None:
        self.block = trace.header.hash_block_tokens
        self.tok = tok
        self.vocab = vocab
        self.factor = tool_factor
        self.replies: dict[str, ToolReply] = {}
        self._outputs: list[ForcedOutput] = []
        self._folded = 0

    def text(self, content: Content, key: str) -> str:
        if isinstance(content, TextContent):
            return content.text
        return self.vocab.text(self._indices(content, key))

    def _indices(self, content: TokenContent, key: str) -> list[int]:
        return content_token_ids(
            content, block_tokens=self.block, key=key, low=0, high=len(self.vocab)
        )

    def request(self, index: int, r: TraceRequest) -> RequestPlan:
        rid = r.id
        system_key = f"group:{r.group}/system" if r.group is not None else f"{rid}/system"
        outputs: list[ForcedOutput] = []
        turns: list[Turn] = []
        message, gap, count = self.text(r.query, f"{rid}/query"), r.calls[0].gap_s, 0
        last_key: str | None = None  # the reply of the latest tool call
        for i, call in enumerate(r.calls):
            extra = None
            if call.extra_input is not None:
                extra = self.text(call.extra_input, f"{rid}/calls.{i}.extra_input")
            if i > 0 and not r.calls[i - 1].tool_calls:
                # The previous call was a final answer: new input starts the next turn.
                turns.append(Turn(message, gap, count))
                message, gap, count = extra or "", call.gap_s, 0
            elif extra is not None and last_key is None:
                message = f"{message}\n{extra}" if message else extra
                self._folded += 1
            elif extra is not None and last_key is not None:
                old = self.replies[last_key]
                self.replies[last_key] = ToolReply(old.name, f"{old.text}\n{extra}", old.sleep_s)
                self._folded += 1
            count += 1
            next_gap = r.calls[i + 1].gap_s if i + 1 < len(r.calls) else 0.0
            planned = []
            for j, tc in enumerate(call.tool_calls):
                key = str(len(self.replies))
                result = self.text(tc.result, f"{rid}/calls.{i}.tool_calls.{j}.result")
                sleep_s = tc.latency_s * self.factor + next_gap
                self.replies[key] = ToolReply(tc.name, result, sleep_s)
                planned.append(PlannedCall(tc.name, key, tc.at))
                last_key = key
            outputs.append(self._output(r, i, planned))
        turns.append(Turn(message, gap, count))
        self._outputs += outputs
        system = self.text(r.system, system_key)
        return RequestPlan(index, rid, r.arrival_s, system, tuple(turns), tuple(outputs))

    def _output(self, r: TraceRequest, i: int, planned: list[PlannedCall]) -> ForcedOutput:
        out = r.calls[i].output
        if isinstance(out, TextContent):
            forced = text_output(self.tok, out.text, planned)
        else:
            filler = self._indices(out, f"{r.id}/calls.{i}.output")
            forced = token_output(self.tok, self.vocab, out.tokens, planned, filler)
        # The agent runs whatever calls its parser finds (a final answer's too, unless it
        # is its turn's last allowed iteration): they must be exactly the trace's.
        found = call_positions(self.tok, forced.ids)
        names = [c.name if isinstance(c, ParsedCall) else None for _, c in found]
        if names != [p.name for p in planned] or [at for at, _ in found] != list(forced.closes):
            raise LayoutError(
                f"request {r.id!r}, calls.{i}: the forced output parses as calls {names}, "
                f"not the trace's {[p.name for p in planned]}"
            )
        return forced

    def stats(self) -> PlanStats:
        outs = self._outputs
        return PlanStats(
            outputs=len(outs),
            lengthened_outputs=sum(1 for o in outs if o.lengthened),
            added_output_tokens=sum(o.lengthened for o in outs),
            shifted_calls=sum(o.shifted for o in outs),
            neutralized_tags=sum(o.neutralized for o in outs),
            folded_inputs=self._folded,
        )


def tool_latency_summary(plan: ReplayPlan) -> dict[str, float]:
    """Median and maximum tool sleep of a plan (for reports)."""
    sleeps = [r.sleep_s for r in plan.replies.values()]
    if not sleeps:
        return {}
    return {"median_s": statistics.median(sleeps), "max_s": max(sleeps)}
