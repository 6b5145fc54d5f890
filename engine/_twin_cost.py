"""What one engine step computes (``StepShape``) and what it costs (a ``CostModel``).

The twin asks its cost model for the duration of exactly the step vLLM's scheduler just
built. Two models exist: ``LinearStepCost`` (fitted to a real engine by
``agentrt engine profile``) here, and the GPU roofline in ``_twin_roofline``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Chunk:
    """A run of ``tokens`` new tokens of one sequence whose first ``context`` tokens are
    already in the KV cache (prefix-cache hits and earlier chunks)."""

    tokens: int
    context: int

    @property
    def attention_pairs(self) -> int:
        """(query, key) pairs of causal attention over the chunk::

        context c = 3, tokens n = 2      keys  k0 k1 k2 k3 k4
        query 3 attends k0..k3  (c + 1)        .  .  .  q
        query 4 attends k0..k4  (c + 2)        .  .  .  .  q
        total n*c + n*(n+1)/2 = 6 + 3 = 9
        """
        return self.tokens * self.context + self.tokens * (self.tokens + 1) // 2


@dataclass(frozen=True, slots=True)
class StepShape:
    """What one engine step computed, as the scheduler put it together.

    ``prefills``: chunks of prompts (or of recomputed preempted sequences);
    ``decodes``: the context of each sequence that decodes one token; ``new_requests``:
    sequences scheduled for the first time (their admission costs the runner set-up work).
    Invariant: a sequence appears at most once.
    """

    prefills: tuple[Chunk, ...] = ()
    decodes: tuple[int, ...] = ()
    new_requests: int = 0

    @property
    def prefill_tokens(self) -> int:
        return sum(c.tokens for c in self.prefills)

    @property
    def prefill_pairs(self) -> int:
        return sum(c.attention_pairs for c in self.prefills)

    @property
    def num_decodes(self) -> int:
        return len(self.decodes)

    @property
    def decode_context(self) -> int:
        """Context tokens the decoding sequences attend to (their own new token left out)."""
        return sum(self.decodes)

    @property
    def tokens(self) -> int:
        """Tokens through the model's linear layers this step."""
        return self.prefill_tokens + self.num_decodes

    @property
    def sequences(self) -> int:
        """Sequences in the batch; vLLM computes logits for one position of each."""
        return len(self.prefills) + self.num_decodes

    @property
    def is_empty(self) -> bool:
        return not (self.prefills or self.decodes)

    def to_json(self) -> dict[str, Any]:
        return {
            "prefills": [[c.tokens, c.context] for c in self.prefills],
            "decodes": list(self.decodes),
            "new_requests": self.new_requests,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StepShape:
        return cls(
            prefills=tuple(Chunk(int(n), int(c)) for n, c in data.get("prefills", [])),
            decodes=tuple(int(c) for c in data.get("decodes", [])),
            new_requests=int(data.get("new_requests", 0)),
        )


@runtime_checkable
class CostModel(Protocol):
    """Seconds one engine step takes. Invariant: an empty step costs nothing."""

    def step_time(self, shape: StepShape) -> float: ...

    def describe(self) -> dict[str, Any]: ...


FEATURES = (
    "step_s",
    "prefill_token_s",
    "prefill_pair_s",
    "decode_seq_s",
    "decode_context_s",
    "new_request_s",
)
"""Names of ``LinearStepCost``'s coefficients, in the order of ``features``."""

PAIR_UNIT = 1000
"""Attention pairs are counted in thousands so that every coefficient has a similar scale."""


def features(shape: StepShape) -> tuple[float, ...]:
    """The regressors of ``LinearStepCost`` for one step, in ``FEATURES`` order."""
    return (
        1.0,
        float(shape.prefill_tokens),
        shape.prefill_pairs / PAIR_UNIT,
        float(shape.num_decodes),
        float(shape.decode_context),
        float(shape.new_requests),
    )


@dataclass(frozen=True, slots=True)
class LinearStepCost:
    """A step's time as a non-negative linear function of what it computes.

    ``t = step_s + prefill_token_s * P + prefill_pair_s * A / 1000 + decode_seq_s * D
    + decode_context_s * C + new_request_s * N`` with P prefill tokens, A their attention
    pairs, D decoding sequences, C their context tokens and N newly admitted requests.

    Raises:
        ValueError: a negative or non-finite coefficient.
    """

    step_s: float = 0.0
    prefill_token_s: float = 0.0
    prefill_pair_s: float = 0.0
    decode_seq_s: float = 0.0
    decode_context_s: float = 0.0
    new_request_s: float = 0.0

    def __post_init__(self) -> None:
        for name in FEATURES:
            value = getattr(self, name)
            if not (value >= 0 and value < float("inf")):
                raise ValueError(f"LinearStepCost.{name} must be a finite number >= 0, got {value}")

    @classmethod
    def from_coefficients(cls, coefficients: Sequence[float]) -> LinearStepCost:
        return cls(**dict(zip(FEATURES, (float(c) for c in coefficients), strict=True)))

    def coefficients(self) -> tuple[float, ...]:
        return tuple(float(getattr(self, name)) for name in FEATURES)

    def step_time(self, shape: StepShape) -> float:
        if shape.is_empty:
            return 0.0
        return sum(c * x for c, x in zip(self.coefficients(), features(shape), strict=True))

    def as_dict(self) -> dict[str, float]:
        """Coefficient name -> value (the ``coefficients`` of a measured profile)."""
        return dict(zip(FEATURES, self.coefficients(), strict=True))

    def describe(self) -> dict[str, Any]:
        return {"kind": "measured", **self.as_dict()}
