"""The cache hints of one LLM call: the prompt's tiers, adjusted for what the loop knows.

Two things the token log's tiers cannot say on their own:

* A response's own tokens. A request's hints describe its prompt, so the tokens it
  generates would free unlabelled (SCRATCH) and be the first blocks evicted, although a
  run that goes on to call tools needs them at the start of its next prompt: losing them
  cuts that prompt's prefix hit at the previous prompt's end. A hint over the output
  keeps them with the run's context (DEFAULT).
* A call known to be the run's last (it may not call tools: the last iteration, or
  ``tool_choice="none"``). Its blocks are cold the moment it ends, but the run's release
  reaches the engine a step later (the engine schedules its next step at once), and in
  that step they would still outrank every waiting run's tool output. So its prompt and
  output are RESPONSE from the start; the shared SYSTEM prefix stays SYSTEM.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentrt.engine import CacheHint, Tier


def call_hints(
    hints: Sequence[CacheHint], prompt_tokens: int, max_tokens: int, *, final: bool
) -> tuple[CacheHint, ...]:
    """The hints to send with one generate call.

    Positions index the request's whole token sequence, prompt then output
    (``TierPayload``'s rule), so the output of a ``prompt_tokens``-token prompt is
    ``[prompt_tokens, prompt_tokens + max_tokens)``::

        positions  |0 ... prompt_tokens-1|prompt_tokens ... +max_tokens-1|
        not final  [ the prompt's tiers  ][          DEFAULT            )
        final      [SYSTEM][  RESPONSE   ][          RESPONSE           )

    No hints (cache hints off) give none; hints that stop before the prompt's end (a
    re-rendered prompt that diverged from the log) get no output hint, since an output
    after an unlabelled block cannot be kept anyway (``prefix_monotone``).

    Raises:
        ValueError: ``prompt_tokens`` below 0 or ``max_tokens`` below 1.
    """
    if prompt_tokens < 0 or max_tokens < 1:
        raise ValueError(
            f"need prompt_tokens >= 0 and max_tokens >= 1, got {prompt_tokens}, {max_tokens}"
        )
    if not hints:
        return ()
    out: list[CacheHint] = list(hints)
    if final:
        out = [h if h.tier == Tier.SYSTEM else _as_response(h) for h in out]
    if max(h.end for h in hints) >= prompt_tokens:
        tier = Tier.RESPONSE if final else Tier.DEFAULT
        out.append(CacheHint(prompt_tokens, prompt_tokens + max_tokens, tier))
    return tuple(out)


def _as_response(h: CacheHint) -> CacheHint:
    return CacheHint(h.start, h.end, Tier.RESPONSE)
