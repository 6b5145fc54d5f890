"""``Conversation``: a conversation as the model sees it — token log, messages, tokenizer.

It is the only writer of the log and the message list, so the two always describe the
same conversation, and it builds every prompt the agent loop sends, with its cache hints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agentrt.engine import CacheHint, ChatMessage, ChatTokenizer, Tier, ToolCallPart, ToolSchema

from ._executor import ToolCallId
from ._records import Divergence
from ._token_log import SegmentRole, TokenLog


@dataclass(frozen=True, slots=True)
class Prompt:
    """Token ids to send and their cache hints.

    ``divergence``: with the token log off, where the re-rendered prompt stopped matching
    the tokens the model actually saw and wrote (None when it matched them all).
    """

    tokens: tuple[int, ...]
    hints: tuple[CacheHint, ...]
    divergence: Divergence | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    """A point of a conversation to roll back to."""

    segments: int
    messages: int


class Conversation:
    """The token log, the message list and the tokenizer of one conversation.

    One turn appends, in this order (tiers in brackets)::

        open_turn        header [SYSTEM] (first turn only), user message [USER_QUERY]
        open_response    generation prompt [DEFAULT]           -> the prompt of one LLM call
        close_response   generated tokens verbatim + turn close
                         [DEFAULT if tools run, RESPONSE if final]   <- split A ends here
        add_tool_result  one tool message [TOOL_OUTPUT], per call, in call order
        open_response    ...

    With ``token_log`` the prompt is the log itself, so each prompt extends the previous
    one exactly. Without, it is re-rendered from the messages (as chat-endpoint frameworks
    do) and compared with the log: the first difference is reported as a ``Divergence``
    and hints stop there (they describe the log's tokens). With ``cache_hints`` off,
    prompts carry no hints.

    Invariants: ``log`` and ``messages`` describe the same conversation; both only grow,
    except through ``rollback`` (a failed turn never happened).
    """

    def __init__(
        self,
        tokenizer: ChatTokenizer,
        instructions: str,
        tools: Sequence[ToolSchema],
        *,
        token_log: bool,
        cache_hints: bool,
    ) -> None:
        self.tokenizer = tokenizer
        self.instructions = instructions
        self.tools = tuple(tools)
        self.token_log = token_log
        self.cache_hints = cache_hints
        self._log = TokenLog()
        self._messages: list[ChatMessage] = []

    @property
    def log(self) -> TokenLog:
        """The tokens the model saw and wrote (read it; only this class appends)."""
        return self._log

    @property
    def messages(self) -> tuple[ChatMessage, ...]:
        return tuple(self._messages)

    def checkpoint(self) -> Mark:
        return Mark(self._log.checkpoint(), len(self._messages))

    def rollback(self, mark: Mark) -> None:
        """Forget everything appended after ``mark``."""
        self._log.rollback(mark.segments)
        del self._messages[mark.messages :]

    def open_turn(self, message: str) -> None:
        """Append the header (first turn only) and the user's message."""
        self.add_message(ChatMessage("user", message))

    def add_message(self, msg: ChatMessage) -> None:
        """Append a message given whole (the header first, on an empty conversation).

        For conversations whose history arrives from outside (REST input items): a user
        message is USER_QUERY, a tool result TOOL_OUTPUT, anything else DEFAULT.
        """
        tok = self.tokenizer
        if not self._messages:
            self._messages.append(ChatMessage("system", self.instructions))
            self._log.append(
                tok.render_header(self.instructions, self.tools), "system", Tier.SYSTEM
            )
        role, tier = _SEGMENT_OF.get(msg.role, ("assistant", Tier.DEFAULT))
        self._messages.append(msg)
        self._log.append(tok.render_message(msg), role, tier)

    def fork(self) -> Conversation:
        """An independent copy: appending to either leaves the other as it was."""
        twin = Conversation(
            self.tokenizer,
            self.instructions,
            self.tools,
            token_log=self.token_log,
            cache_hints=self.cache_hints,
        )
        tokens = self._log.tokens
        for seg in self._log.segments:
            twin._log.append(tokens[seg.start : seg.end], seg.role, seg.tier)
        twin._messages = list(self._messages)
        return twin

    def open_response(self, iteration: int) -> Prompt:
        """Open the assistant's turn; returns the prompt of LLM call ``iteration``."""
        self._log.append(self.tokenizer.generation_prompt, "generation_prompt", Tier.DEFAULT)
        prompt, matched = self._prompt(generation_prompt=True)
        divergence = None
        if matched < len(prompt) or matched < len(self._log):
            divergence = Divergence(iteration, matched, len(self._log), len(prompt))
        return Prompt(prompt, self._hints(matched), divergence)

    def close_response(
        self,
        token_ids: Sequence[int],
        content: str,
        calls: Sequence[ToolCallPart],
        *,
        final: bool,
    ) -> None:
        """Append the model's tokens verbatim, then close its turn (split A ends here).

        Args:
            token_ids: what the model generated.
            content: its text without tool-call markup (for the message list).
            calls: the well-formed calls it made.
            final: no tools run after it (the RESPONSE tier; else DEFAULT).
        """
        tok = self.tokenizer
        tier = Tier.RESPONSE if final else Tier.DEFAULT
        self._log.append(token_ids, "assistant", tier)
        if not token_ids or token_ids[-1] != tok.im_end_id:
            # Cut off by max_tokens: close the turn the way the template would.
            self._log.append([tok.im_end_id], "turn_close", tier)
        self._log.append(tok.turn_close, "turn_close", tier)
        self._messages.append(ChatMessage("assistant", content, tuple(calls)))

    def add_tool_result(self, call_id: ToolCallId, content: str) -> None:
        msg = ChatMessage("tool", content, tool_call_id=call_id)
        self._messages.append(msg)
        self._log.append(self.tokenizer.render_message(msg), "tool", Tier.TOOL_OUTPUT)

    def split_a(self, pending_ttl_s: float, tail: Sequence[int] = ()) -> Prompt:
        """Everything before the first tool result, to prefill while the tools run.

        ``tail``: tokens known to follow the log whatever the results say (the opening of
        the first result's turn). Built by :func:`pending_split`, as the REST server's.
        """
        prompt, matched = self._prompt(generation_prompt=False)
        return pending_split(Prompt(prompt, self._hints(matched)), tail, pending_ttl_s)

    def _prompt(self, *, generation_prompt: bool) -> tuple[tuple[int, ...], int]:
        """The prompt, and how many of its first tokens are the log's."""
        logged = self._log.tokens
        if self.token_log:
            return logged, len(logged)
        rendered = tuple(
            self.tokenizer.render(
                self._messages, self.tools, add_generation_prompt=generation_prompt
            )
        )
        return rendered, _common_prefix(logged, rendered)

    def _hints(self, n: int) -> tuple[CacheHint, ...]:
        """The log's hints over its first ``n`` tokens."""
        if not self.cache_hints:
            return ()
        return tuple(
            CacheHint(h.start, min(h.end, n), h.tier, h.ttl_s, h.base)
            for h in self._log.hints()
            if h.start < n
        )


def pending_split(prompt: Prompt, tail: Sequence[int], ttl_s: float) -> Prompt:
    """Split A: ``prompt`` (what the engine saw, with its hints by tier) then ``tail``
    (what follows it whatever the tool results say), to prefill while the tools run.

    The one builder of split A, for the agent loop and the REST endpoints alike. Every
    range is SPLIT_PENDING for ``ttl_s`` and then falls back to its own tier; the tail is
    DEFAULT. A prompt without hints (hints off) gives a split A without hints.
    """
    tokens = (*prompt.tokens, *tail)
    if not prompt.hints:
        return Prompt(tokens, ())
    ranges = [
        (h.start, h.end, h.base if h.tier is Tier.SPLIT_PENDING else h.tier) for h in prompt.hints
    ]
    if tail:
        ranges.append((len(prompt.tokens), len(tokens), Tier.DEFAULT))
    return Prompt(
        tokens, tuple(CacheHint(a, b, Tier.SPLIT_PENDING, ttl_s, base=t) for a, b, t in ranges)
    )


_SEGMENT_OF: dict[str, tuple[SegmentRole, Tier]] = {
    "user": ("user", Tier.USER_QUERY),
    "tool": ("tool", Tier.TOOL_OUTPUT),
    "system": ("system", Tier.DEFAULT),
}


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))
