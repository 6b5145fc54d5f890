"""Value types of the thin engine API: requests, streamed deltas, statistics, cache hints."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal, NewType, get_args

RequestId = NewType("RequestId", str)
SessionId = NewType("SessionId", str)

FinishReason = Literal["stop", "length", "abort", "error"]

ToolFormatName = Literal["hermes", "json", "llama3_json", "mistral"]
"""How a model writes tool calls (see ``agentrt.engine.tool_format``)."""
TOOL_FORMAT_NAMES: tuple[ToolFormatName, ...] = get_args(ToolFormatName)


class Tier(IntEnum):
    """What a range of cached tokens is; eviction takes the lowest tier first.

    The order is the contract between orchestrator and engine: free cached blocks
    are evicted from the lowest non-empty tier. Within SCRATCH, RESPONSE and SYSTEM the
    least recently freed goes first; within the tiers of runs waiting for their tools
    (DEFAULT, TOOL_OUTPUT, USER_QUERY) the most recently freed run goes first, after any
    stale ones (``TieredFreeBlockQueue``).
    """

    SCRATCH = 0
    RESPONSE = 1
    DEFAULT = 2
    TOOL_OUTPUT = 3
    USER_QUERY = 4
    SYSTEM = 5
    SPLIT_PENDING = 6


@dataclass(frozen=True, slots=True)
class CacheHint:
    """Label for prompt token positions ``[start, end)``.

    Invariants: ``0 <= start < end``; ``ttl_s`` is only meaningful for
    ``SPLIT_PENDING`` (after it the range falls back to ``base``).
    """

    start: int
    end: int
    tier: Tier
    ttl_s: float | None = None
    base: Tier = Tier.DEFAULT

    def __post_init__(self) -> None:
        if self.start < 0:
            raise ValueError(f"CacheHint.start must be >= 0, got {self.start}")
        if self.end <= self.start:
            raise ValueError(f"CacheHint.end must be > start, got [{self.start}, {self.end})")
        if self.ttl_s is not None and not (self.ttl_s > 0 and math.isfinite(self.ttl_s)):
            raise ValueError(f"CacheHint.ttl_s must be a positive number, got {self.ttl_s}")

    def to_wire(self) -> list[Any]:
        """Compact JSON form ``[start, end, tier, ttl_s, base]`` used inside vLLM extra_args."""
        return [self.start, self.end, int(self.tier), self.ttl_s, int(self.base)]

    @classmethod
    def from_wire(cls, item: Sequence[Any]) -> CacheHint:
        start, end, tier, ttl, base = [*list(item), None, int(Tier.DEFAULT)][:5]
        return cls(
            int(start),
            int(end),
            Tier(int(tier)),
            None if ttl is None else float(ttl),
            Tier(int(base)),
        )


@dataclass(frozen=True, slots=True)
class SamplingOptions:
    """Decoding settings, as vLLM's ``SamplingParams`` means them. Validated here so bad
    values never reach the engine; every default changes nothing.

    ``top_k``: 0 keeps every token. ``logit_bias``: (token id, bias added to its logit)
    pairs. ``stop_token_ids``: sampling one of these ends the response (it is part of
    the output, as an EOS is). ``logprobs``: report each output token's log-probability
    and this many most likely alternatives (None: report nothing).

    Raises:
        ValueError: naming the field when a value is out of range.
    """

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    logprobs: int | None = None

    def __post_init__(self) -> None:
        self._check_basic()
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if not (math.isfinite(value) and -2 <= value <= 2):
                raise ValueError(f"{name} must be in [-2, 2], got {value!r}")
        if not (math.isfinite(self.repetition_penalty) and self.repetition_penalty > 0):
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0: off), got {self.top_k!r}")
        if not (math.isfinite(self.min_p) and 0 <= self.min_p <= 1):
            raise ValueError(f"min_p must be in [0, 1], got {self.min_p!r}")
        for token, bias in self.logit_bias:
            if not (_is_token_id(token) and math.isfinite(bias) and -100 <= bias <= 100):
                raise ValueError(
                    f"logit_bias must map token ids to biases in [-100, 100], got {token}: {bias}"
                )
        if not all(_is_token_id(t) for t in self.stop_token_ids):
            raise ValueError(f"stop_token_ids must be token ids, got {self.stop_token_ids!r}")
        if self.logprobs is not None and not (
            isinstance(self.logprobs, int) and 0 <= self.logprobs <= 20
        ):
            raise ValueError(f"logprobs must be an integer in [0, 20], got {self.logprobs!r}")

    def _check_basic(self) -> None:
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {self.max_tokens!r}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"temperature must be >= 0, got {self.temperature!r}")
        if not (math.isfinite(self.top_p) and 0 < self.top_p <= 1):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.seed is not None and not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if isinstance(self.stop, str) or any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError(f"stop must be a tuple of non-empty strings, got {self.stop!r}")


def _is_token_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True, slots=True)
class JsonSchemaConstraint:
    """Decode only text that parses as JSON matching ``schema``."""

    schema: Mapping[str, Any]
    kind: Literal["json_schema"] = "json_schema"


@dataclass(frozen=True, slots=True)
class RegexConstraint:
    """Decode only text matching ``pattern``."""

    pattern: str
    kind: Literal["regex"] = "regex"


@dataclass(frozen=True, slots=True)
class ToolSchema:
    """A tool as the model sees it: name, description, JSON schema of its arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCallConstraint:
    """Decode tool calls written in ``format`` (its grammar; see ``ToolFormat``).

    ``required``: at least one call, and nothing but calls. Otherwise free text is
    allowed and every call the model opens is forced to parse and match a schema.
    ``parallel``: more than one call may follow.
    ``end_after_call``: with ``required`` and ``parallel``, the grammar lets the response
    end after each call's closing separator, so the model chooses between ending and
    another call only once it has written the separator (as in a JSON list of calls,
    where ``]`` competes with ``,``). No effect otherwise.
    ``answer_schema``: without ``required``, the response is either calls (nothing else,
    as with ``required``) or one JSON value matching this schema: a structured answer
    (OpenAI's ``response_format`` beside tools). Ignored with ``required``: there the
    response holds no answer, only calls.
    """

    tools: tuple[ToolSchema, ...]
    required: bool = True
    parallel: bool = True
    format: ToolFormatName = "hermes"
    end_after_call: bool = False
    answer_schema: Mapping[str, Any] | None = None
    kind: Literal["tool_calls"] = "tool_calls"

    def __post_init__(self) -> None:
        if not self.tools:
            raise ValueError("ToolCallConstraint.tools must name at least one tool")
        if self.format not in TOOL_FORMAT_NAMES:
            raise ValueError(
                f"ToolCallConstraint.format must be one of {list(TOOL_FORMAT_NAMES)}, "
                f"got {self.format!r}"
            )


Constraint = JsonSchemaConstraint | RegexConstraint | ToolCallConstraint


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """One LLM call. The prompt is token ids: the orchestrator renders, the engine computes.

    Invariants: hints lie within the prompt and the output the call may generate
    (positions index prompt then output, up to ``len(prompt) + max(sampling.max_tokens,
    len(forced_output))``), so a call can label its own response; ``forced_output``
    (trace replay) makes the engine emit exactly those tokens, ignoring
    ``sampling.max_tokens``.
    """

    prompt: tuple[int, ...]
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    constraint: Constraint | None = None
    hints: tuple[CacheHint, ...] = ()
    session: SessionId | None = None
    priority: int = 0
    cache_salt: str | None = None
    forced_output: tuple[int, ...] | None = None
    request_id: RequestId | None = None

    def __post_init__(self) -> None:
        output = max(self.sampling.max_tokens, len(self.forced_output or ()))
        _check_prompt("GenerateRequest", self.prompt, self.hints, output=output)
        if self.forced_output is not None and not self.forced_output:
            raise ValueError("GenerateRequest.forced_output must not be empty")


BACKGROUND_PRIORITY = 2**31 - 1
"""The priority of background work: larger than any foreground priority (lower is served
first), and still a 32-bit integer for servers that parse it as one."""


@dataclass(frozen=True, slots=True)
class PrefillRequest:
    """Compute and cache the KV of ``prompt`` without producing output (split prefill).

    The fields mean what they mean in :class:`GenerateRequest`. Invariants: the prompt
    holds at least one token and the hints lie within it. Kept apart from
    ``GenerateRequest`` so prefill-only settings have a place to go.
    """

    prompt: tuple[int, ...]
    hints: tuple[CacheHint, ...] = ()
    session: SessionId | None = None
    priority: int = 0
    cache_salt: str | None = None
    request_id: RequestId | None = None
    background: bool = False
    """Spare capacity only: sent at :data:`BACKGROUND_PRIORITY` instead of ``priority``,
    behind every foreground request (and the first that vLLM preempts)."""

    def __post_init__(self) -> None:
        _check_prompt("PrefillRequest", self.prompt, self.hints)


def _check_prompt(
    kind: str, prompt: Sequence[int], hints: Sequence[CacheHint], *, output: int = 0
) -> None:
    if not prompt:
        raise ValueError(f"{kind}.prompt must hold at least one token")
    n = len(prompt)
    for h in hints:
        if h.end > n + output:
            room = f" and its {output} output tokens" if output else ""
            raise ValueError(
                f"{kind}.hints: [{h.start}, {h.end}) exceeds the prompt of {n} tokens{room}"
            )


@dataclass(frozen=True, slots=True)
class RequestStats:
    """What one finished (or failed) LLM call cost. Times are monotonic seconds."""

    request_id: RequestId
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int
    finish_reason: FinishReason
    arrival_t: float
    first_token_t: float | None
    finish_t: float
    queue_s: float | None = None
    error: str | None = None

    @property
    def ttft_s(self) -> float | None:
        """Arrival to first token, or None when no token came."""
        return None if self.first_token_t is None else self.first_token_t - self.arrival_t


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One output token's log-probability and the most likely alternatives at its place
    (``top``: (token id, log-probability) pairs, most likely first)."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True, slots=True)
class TokenDelta:
    """A piece of streamed output. ``t`` is the monotonic time it reached the caller.

    The last delta of a stream carries ``stats`` (and may hold no tokens). ``logprobs``:
    one entry per token of ``token_ids`` when the request asked for them
    (``SamplingOptions.logprobs``), else None.
    """

    token_ids: tuple[int, ...]
    text: str
    t: float
    stats: RequestStats | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None

    @property
    def is_last(self) -> bool:
        return self.stats is not None


@dataclass(frozen=True, slots=True)
class PrefillStats:
    """Result of computing and caching KV for a prompt without producing output."""

    prompt_tokens: int
    cached_tokens: int
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class TierStats:
    """Per-tier counts reported by the tier-aware scheduler.

    Attributes:
        cached_blocks: free blocks of the tier that still hold cached KV.
        evictions: cached blocks of the tier reused for new content.
        hits: free blocks of the tier that a prefix-cache hit took back.
    """

    cached_blocks: int
    evictions: int
    hits: int

    def to_json(self) -> dict[str, int]:
        """The plain JSON form every transport uses (engine-core utility, HTTP, reports)."""
        return {"cached_blocks": self.cached_blocks, "evictions": self.evictions, "hits": self.hits}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TierStats:
        """Read :meth:`to_json`'s form; a missing count is 0.

        Raises:
            ValueError: naming the count that is not an integer.
        """
        counts: list[int] = []
        for key in ("cached_blocks", "evictions", "hits"):
            value = raw.get(key) or 0
            if not isinstance(value, int | float | str):
                raise ValueError(f"tier stats: {key} must be an integer, got {value!r}")
            try:
                counts.append(int(value))
            except ValueError:
                raise ValueError(f"tier stats: {key} must be an integer, got {value!r}") from None
        return cls(*counts)


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A snapshot of engine state. Counters are cumulative since start."""

    prefix_cache_queries: int
    prefix_cache_hits: int
    kv_usage: float
    num_running: int
    num_waiting: int
    block_size: int
    num_blocks: int
    tiers: Mapping[str, TierStats] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float:
        q = self.prefix_cache_queries
        return self.prefix_cache_hits / q if q else 0.0


KV_FULL = 0.95
"""KV cache usage from which an engine counts as full: new work would evict or preempt."""


@dataclass(frozen=True, slots=True)
class EngineLoad:
    """How busy the engine is now: the cheap signal that background work (split prefill)
    reads before it asks for compute.

    Attributes:
        waiting: requests queued for admission.
        running: requests being prefilled or decoded.
        full: the engine's recent steps used their whole budget (tokens, sequences or
            KV blocks), so any extra work would displace foreground work.
        prefill_tokens_per_s: how fast the engine prefills uncached tokens, when it
            knows (None: the caller estimates it from its own requests).
        known: False when the engine could not tell (e.g. a server without metrics);
            such a load counts as saturated, so background work is skipped.
    """

    waiting: int
    running: int
    full: bool = False
    prefill_tokens_per_s: float | None = None
    known: bool = True

    @property
    def saturated(self) -> bool:
        """Extra work now would delay foreground work (or nobody can tell that it won't)."""
        return not self.known or self.waiting > 0 or self.full

    @classmethod
    def from_gauges(
        cls,
        *,
        waiting: int,
        running: int,
        kv_usage: float,
        max_num_seqs: int | None,
        full_steps: bool = False,
        prefill_tokens_per_s: float | None = None,
    ) -> EngineLoad:
        """The one rule every engine reports its load by, from what vLLM's gauges say.

        "Full" when the batch holds ``max_num_seqs`` sequences (None: the engine does not
        say, e.g. a server's metrics), the KV cache is at least :data:`KV_FULL` used, or the
        engine saw its recent steps use their whole budget (``full_steps``; only engines
        that see their steps can tell). The twin reports by this rule exactly as the real
        engine does, so split prefill makes the same choices on both.
        """
        at_seqs = max_num_seqs is not None and running >= max_num_seqs
        return cls(
            waiting=waiting,
            running=running,
            full=full_steps or at_seqs or kv_usage >= KV_FULL,
            prefill_tokens_per_s=prefill_tokens_per_s,
        )


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """Static facts about an engine that the orchestrator plans with."""

    model: str
    max_model_len: int
    block_size: int
    supports_hints: bool
    backend: Literal["vllm", "http", "scripted", "twin"]
    max_num_seqs: int | None = None
    """How many sequences one engine step holds at most (None: the engine does not say)."""
