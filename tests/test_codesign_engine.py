"""The co-design claims on the real engine, each in a test that fails without its feature.

- streaming dispatch: a tool starts while the model is still decoding;
- split prefill: it runs while a slow tool runs, and the next call finds it cached;
- token log: the next prompt is the previous prompt + every generated token + turn close.

The model computes every step; where a test needs exact lengths, the proxy below forces
which tokens it emits (``forced_output``, as trace replay does), and the instructions are
padded so that block boundaries fall where the test puts them. Each run has its own
``cache_salt``: nothing cached by an earlier test can stand in for what this one must
compute. Forced replies are short: decoding is the slow part on CPU.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

import anyio
import pytest

from agentrt import (
    Agent,
    SamplingOptions,
    TokenEvent,
    ToolCallDetected,
    ToolStarted,
    tool,
)
from agentrt._conversation import Conversation
from agentrt.engine import (
    Engine,
    EngineProxy,
    GenerateRequest,
    PrefillRequest,
    PrefillStats,
    TokenDelta,
)

pytestmark = [pytest.mark.anyio, pytest.mark.engine]

# What the slow tool waits at most for the split prefill before giving up (only a broken
# split prefill ever makes it wait that long).
PREFILL_WAIT_S = 30.0


@dataclasses.dataclass(frozen=True)
class Seen:
    """One generate request as the engine received it, and the tokens it emitted."""

    request: GenerateRequest
    output: tuple[int, ...]


# call index -> request -> forced output (None: the model decides)
Script = Callable[[int, GenerateRequest], tuple[int, ...] | None]


class Recorder(EngineProxy):
    """The real engine with scripted outputs, recording every LLM call and split prefill.

    ``delivered`` counts the tokens handed to the agent loop so far in the current call, so
    a tool can tell whether the response was still being decoded when it started.
    """

    def __init__(self, inner: Engine, script: Script) -> None:
        super().__init__(inner)
        self.script = script
        self.calls: list[Seen] = []
        self.prefills: list[tuple[PrefillRequest, PrefillStats]] = []
        self.prefilled = anyio.Event()
        self.delivered = 0

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]:
        forced = self.script(len(self.calls), request)
        if forced is not None:
            request = dataclasses.replace(request, forced_output=forced, constraint=None)
        out: list[int] = []
        self.delivered = 0
        async with aclosing(self.inner.generate(request)) as stream:
            async for delta in stream:
                out.extend(delta.token_ids)
                self.delivered = len(out)
                yield delta
        self.calls.append(Seen(request, tuple(out)))

    async def prefill(self, request: PrefillRequest) -> PrefillStats:
        stats = await self.inner.prefill(request)
        self.prefills.append((request, stats))
        self.prefilled.set()
        return stats


def call_text(name: str, **arguments: str) -> str:
    args = ", ".join(f'"{k}": "{v}"' for k, v in arguments.items())
    return f'<tool_call>\n{{"name": "{name}", "arguments": {{{args}}}}}\n</tool_call>'


def salted() -> str:
    return f"codesign-{uuid.uuid4().hex}"


def first_prompt(engine: Engine, agent: Agent, question: str) -> tuple[int, ...]:
    """The prompt of the agent's first LLM call, built as the agent loop builds it."""
    conv = Conversation(
        engine.tokenizer.with_tool_format(agent.tool_format),
        agent.instructions,
        [t.schema for t in agent.tools],
        token_log=True,
        cache_hints=True,
    )
    conv.open_turn(question)
    return conv.open_response(0).tokens


def padded(engine: Engine, agent: Agent, question: str, residue: int) -> Agent:
    """The agent with its instructions padded until its first prompt's length is
    ``residue`` modulo the block size, and longer than one block."""
    bs = engine.info.block_size
    for n in range(bs, 3 * bs):
        candidate = dataclasses.replace(agent, instructions=agent.instructions + " ok" * n)
        if len(first_prompt(engine, candidate, question)) % bs == residue % bs:
            return candidate
    raise AssertionError("no padding puts the prompt's end where the test needs it")


async def test_a_tool_starts_while_the_model_is_still_decoding(vllm_engine: Engine) -> None:
    tok = vllm_engine.tokenizer
    first = tok.encode(call_text("lookup", key="alpha"))
    second = tok.encode(call_text("lookup", key="beta"))
    reply = (*first, *tok.encode("\n"), *second, tok.im_end_id)
    engine = Recorder(vllm_engine, lambda i, _r: reply if i == 0 else None)
    delivered_at_start: dict[str, int] = {}

    @tool
    async def lookup(key: str) -> str:
        """Look a key up.

        Args:
            key: what to look up
        """
        delivered_at_start.setdefault(key, engine.delivered)
        return f"{key}: 1"

    agent = Agent(
        instructions="Look things up, then answer.",
        tools=[lookup],
        engine=engine,
        max_iterations=2,
        sampling=SamplingOptions(max_tokens=8),
        cache_salt=salted(),
    )
    events = [e async for e in agent.stream("Look up alpha and beta.")]

    assert engine.calls[0].output == reply
    (alpha,) = (
        e.call_id
        for e in events
        if isinstance(e, ToolCallDetected) and e.arguments == {"key": "alpha"}
    )
    started = next(
        n for n, e in enumerate(events) if isinstance(e, ToolStarted) and e.call_id == alpha
    )
    last_token = max(
        n for n, e in enumerate(events) if isinstance(e, TokenEvent) and e.iteration == 0
    )
    # "alpha" ran while the model was still writing the "beta" call.
    assert delivered_at_start["alpha"] < len(first) + len(second) // 2
    assert started < last_token


async def test_split_prefill_runs_while_a_slow_tool_runs_and_the_next_call_finds_it(
    vllm_engine: Engine,
) -> None:
    tok = vllm_engine.tokenizer
    bs = vllm_engine.info.block_size
    call = (*tok.encode(call_text("slow_search", q="kv cache")), tok.im_end_id)
    engine = Recorder(vllm_engine, lambda i, _r: call if i == 0 else None)

    @tool(timeout_s=PREFILL_WAIT_S + 10, expected_latency_s=2.0)
    async def slow_search(q: str) -> str:
        """Search a slow index.

        Args:
            q: the query
        """
        # Slow until the split prefill is done (an event, not a guess at how long it takes).
        with anyio.move_on_after(PREFILL_WAIT_S):
            await engine.prefilled.wait()
        return f"3 results for {q}"

    question = "What evicts KV blocks?"
    agent = Agent(
        instructions="Search first, then answer in one sentence.",
        tools=[slow_search],
        engine=engine,
        max_iterations=2,
        sampling=SamplingOptions(max_tokens=8),
        cache_salt=salted(),
    )
    # Split A (prompt + reply + turn close) ends exactly on a block boundary: decoding
    # computes the KV of all but the reply's last token, so only the split prefill can
    # complete that last block.
    agent = padded(vllm_engine, agent, question, -(len(call) + len(tok.turn_close)))
    result = await agent.run(question)

    first, second = result.iterations[:2]
    gen0 = engine.calls[0]
    assert gen0.output == call
    split_a = (*gen0.request.prompt, *gen0.output, *tok.turn_close)
    assert len(split_a) % bs == 0 and len(split_a) > bs
    decoded = len(gen0.request.prompt) + len(gen0.output) - 1  # KV the decode computed
    assert decoded // bs * bs == len(split_a) - bs
    # The next call finds all of split A cached: the last block only the prefill computed.
    assert second.cached_tokens == len(split_a)
    ((prefill, _stats),) = engine.prefills
    assert prefill.prompt == split_a
    # The prefill ran inside the tool's span: after the tool started, before it returned.
    (span,) = first.tools
    assert first.split_prefill_span is not None
    lo, hi = first.split_prefill_span
    assert span.start_t <= lo and hi <= span.end_t


async def test_the_next_prompt_is_the_last_plus_every_generated_token_and_the_turn_close(
    vllm_engine: Engine,
) -> None:
    tok = vllm_engine.tokenizer
    bs = vllm_engine.info.block_size
    ids = [tok.encode(c) for c in call_text("search", q="what holds the cache")]
    assert all(len(i) == 1 for i in ids), "a character is not a single token"
    # One token per character: what a model may write, but what no re-encoding of the text
    # gives back (a prompt re-rendered from the messages would differ).
    reply = (*(i[0] for i in ids), tok.im_end_id)
    assert tuple(tok.encode(tok.decode(reply))) != reply
    engine = Recorder(vllm_engine, lambda i, _r: reply if i == 0 else None)

    @tool
    def search(q: str) -> str:
        """Search.

        Args:
            q: the query
        """
        return f"found: {q[:20]}"

    question = "Where does the KV cache live?"
    agent = Agent(
        instructions="Search, then answer briefly.",
        tools=[search],
        engine=engine,
        max_iterations=2,
        sampling=SamplingOptions(max_tokens=4),
        cache_salt=salted(),
    )
    # The reply straddles a block boundary: its first half ends a block.
    agent = padded(vllm_engine, agent, question, -(len(reply) // 2))
    result = await agent.run(question)

    assert len(engine.calls) == 2 and len(result.iterations) == 2
    before, after = engine.calls
    assert before.output == reply
    prompt = before.request.prompt
    assert len(prompt) // bs < (len(prompt) + len(reply)) // bs  # a block boundary inside
    head = (*prompt, *reply, *tok.turn_close)
    assert after.request.prompt[: len(head)] == head
    assert len(after.request.prompt) > len(head)  # then the tool's result
