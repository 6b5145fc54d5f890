"""The engine-side lifecycle of stored ``/v1/responses`` conversations.

A stored response that ends in ``function_call`` items waits for its client's tools:
while they run, split A of the continuation (the conversation so far and the opening of
the first tool result's turn) is prefilled in the background by the server's
``SplitPrefills`` — the chat endpoint's mechanism and policy — so a request with
``previous_response_id`` and the ``function_call_output`` items finds it cached. How
long the client's tools take is learned per conversation from the gap between such a
response and its continuation.

A conversation's engine session is released when its last stored response leaves the
store (``DELETE``, LRU, TTL), or at once when a response waiting for the client is not
stored (nothing could continue it).
"""

from __future__ import annotations

from agentrt._records import IterationRecord
from agentrt.engine import Engine, SessionId

from ._responses_turn import ResponseStore, Stored
from ._sessions import expected_tool_s, learn_latency, split_ttl
from ._split_prefill import SplitJob, SplitPrefills, result_opening


def latency_after(previous: Stored | None, now: float) -> float | None:
    """The conversation's client-tool latency once ``previous`` is continued ``now``."""
    if previous is None:
        return None
    if not previous.awaits_client:
        return previous.tool_latency_s
    return learn_latency(previous.tool_latency_s, now - previous.finished_t)


def continuation_split(
    stored: Stored, last: IterationRecord | None, cache_salt: str | None
) -> SplitJob | None:
    """Split A of ``stored``'s continuation (None: it does not wait for the client).

    ``last``: the response's last LLM call. The continuation appends every waiting
    call's result in call order, so the first waiting call's result opens the turn after
    the log.
    """
    if not stored.awaits_client:
        return None
    conv = stored.conversation
    expected = expected_tool_s(stored.tool_latency_s)
    first = stored.waiting[0].call.call_id
    split = conv.split_a(split_ttl(expected), result_opening(conv.tokenizer, first))
    # The log holds the last prompt then its output verbatim: what the engine has, but
    # the last sampled token (never fed back, so without KV).
    held = 0 if last is None else max(0, last.prompt_tokens + last.output_tokens - 1)
    return SplitJob(
        stored.session,
        split,
        conv.log.tokens[:held],
        expected,
        stored.finished_t,
        None,  # the engine's own prefill rate decides (``EngineLoad``), else no limit
        cache_salt,
    )


async def release_dropped(store: ResponseStore, splits: SplitPrefills, engine: Engine) -> None:
    """Release the sessions none of whose responses is stored any more."""
    for session in store.take_dropped():
        await release_session(session, splits, engine)


async def release_session(session: SessionId, splits: SplitPrefills, engine: Engine) -> None:
    """Release ``session``'s engine state, cancelling its split prefill first."""
    splits.cancel(session)
    await engine.release(session)
