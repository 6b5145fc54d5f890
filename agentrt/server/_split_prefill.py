"""``SplitPrefills``: the REST endpoints' split prefills, on spare engine capacity only.

When a response hands tool calls to the client (a chat completion ending in
``tool_calls``, a stored ``/v1/responses`` response ending in ``function_call`` items),
the next request of the conversation will start with split A: the prompt, the generated
turn and the opening of the first tool result's turn. Prefilling it while the client
runs its tools makes that request find it cached — a bet the agent loop's policy
(``agentrt._split_policy.decide_split``) takes only when the engine is not saturated
(``engine.load()``) and the prefill should end before the tools (their learned latency).
The prefill is background work (``PrefillRequest(background=True)``: the engine's
lowest priority, first to be preempted), and it is cancelled the moment the client is
back (the next request prefills the rest itself) or a newer split of the same session
supersedes it.

The chat and responses endpoints share one ``SplitPrefills`` per server: one mechanism,
one policy.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentrt._conversation import Prompt
from agentrt._split_policy import SkipSplit, decide_split, uncached_full_blocks
from agentrt.engine import ChatMessage, ChatTokenizer, Engine, PrefillRequest, SessionId

log = logging.getLogger("agentrt.server")


@dataclass(frozen=True, slots=True)
class SplitJob:
    """One split A to prefill for ``session``.

    Attributes:
        split: split A's tokens and hints (``agentrt._conversation.pending_split``).
        cached: what the engine already holds for the conversation (the last prompt and
            its output but the last sampled token, which has no KV yet).
        expected_s: how long the client's tools are expected to take.
        tools_started: when the tools started (the response's end), on the server clock.
        tokens_per_s: prefill speed seen on this conversation's requests (None: unknown).
        cache_salt: the caller's salt (never shared across keys).
    """

    session: SessionId
    split: Prompt
    cached: tuple[int, ...]
    expected_s: float
    tools_started: float
    tokens_per_s: float | None
    cache_salt: str | None


class SplitPrefills:
    """In-flight split prefills, at most one per session, all on the event loop.

    Args:
        clock: the server clock (seconds, monotonic); ``tools_started`` is read on it.

    ``outcomes`` counts what became of each job: "done", "cancelled", "failed" or a
    ``SkipSplit`` reason ("saturated", "tools_faster", "nothing_new").
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tasks: dict[SessionId, asyncio.Task[None]] = {}
        self.outcomes: collections.Counter[str] = collections.Counter()

    def __contains__(self, session: object) -> bool:
        return session in self._tasks

    def start(self, engine: Engine, job: SplitJob) -> None:
        """Decide and (maybe) prefill ``job`` in the background; supersedes the
        session's earlier job if it is still in flight."""
        self.cancel(job.session)
        task = asyncio.get_running_loop().create_task(self._run(engine, job))
        self._tasks[job.session] = task
        task.add_done_callback(functools.partial(self._forget, job.session))

    def cancel(self, session: SessionId) -> None:
        """The client is back (or the session is gone): stop its split prefill."""
        task = self._tasks.pop(session, None)
        if task is not None and task.cancel():
            self.outcomes["cancelled"] += 1

    async def settled(self) -> None:
        """Wait until every job started so far has ended (decided, done or cancelled)."""
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks)

    async def _run(self, engine: Engine, job: SplitJob) -> None:
        """Never raises but on cancellation: a background optimisation fails nothing."""
        try:
            decision = decide_split(
                await engine.load(),
                new_tokens=uncached_full_blocks(
                    job.split.tokens, job.cached, engine.info.block_size
                ),
                tools_left_s=job.expected_s - (self._clock() - job.tools_started),
                tokens_per_s=job.tokens_per_s,
                relabels=bool(job.split.hints) and engine.info.supports_hints,
            )
            if isinstance(decision, SkipSplit):
                self.outcomes[decision.reason] += 1
                return
            await engine.prefill(
                PrefillRequest(
                    job.split.tokens,
                    job.split.hints if engine.info.supports_hints else (),
                    job.session,
                    cache_salt=job.cache_salt,
                    background=True,
                )
            )
            self.outcomes["done"] += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # PromptTooLongError included: the next request won't fit
            self.outcomes["failed"] += 1
            log.warning("split prefill of session %s failed: %s", job.session, exc)

    def _forget(self, session: SessionId, task: asyncio.Task[None]) -> None:
        if self._tasks.get(session) is task:
            del self._tasks[session]

    async def aclose(self) -> None:
        """Cancel every split prefill in flight (the server is stopping)."""
        tasks, self._tasks = list(self._tasks.values()), {}
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def result_opening(tok: ChatTokenizer, call_id: str) -> tuple[int, ...]:
    """The tokens that open the first tool result's turn, whatever the result says: the
    common head of two renders that differ only in their content."""
    a = tok.render_message(ChatMessage("tool", "0", tool_call_id=call_id))
    b = tok.render_message(ChatMessage("tool", "x", tool_call_id=call_id))
    n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return tuple(a[:n])


def engine_held(prompt: Sequence[int], output: Sequence[int]) -> tuple[int, ...]:
    """What the engine holds after a request: its prompt and its output but the last
    sampled token (which was never fed back, so has no KV)."""
    return (*prompt, *output[:-1])
