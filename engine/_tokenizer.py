"""Token codecs (a model's tokenizer, or bytes for scripted tests) and the chat tokenizer.

``ChatTokenizer.render_segment_ids`` is what the orchestrator's token log is built on:
the token ids of each message, which concatenate to the ids of the whole conversation.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from ._chat import (
    GENERATION_PROMPT,
    IM_END,
    IM_START,
    ChatMessage,
    render_header,
    render_message,
    render_segments,
)
from ._types import ToolSchema


@runtime_checkable
class TokenCodec(Protocol):
    """Text <-> token ids, with the chat markers as single special tokens."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def token_id(self, token: str) -> int: ...

    @property
    def vocab_size(self) -> int: ...


_GIL_FREE_CHARS = 4096


class HFCodec:
    """A Hugging Face ``tokenizer.json`` through the light ``tokenizers`` library (no torch)."""

    def __init__(self, tokenizer_json: str | Path) -> None:
        from tokenizers import Tokenizer

        path = Path(tokenizer_json)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer.json at {path}")
        self._tok = Tokenizer.from_file(str(path))
        self.path = path

    @classmethod
    def from_json_str(cls, text: str) -> HFCodec:
        """A codec from the text of a ``tokenizer.json`` (e.g. served by a remote engine)."""
        from tokenizers import Tokenizer

        codec = cls.__new__(cls)
        codec._tok = Tokenizer.from_str(text)
        codec.path = Path("<remote>")
        return codec

    def encode(self, text: str) -> list[int]:
        if len(text) < _GIL_FREE_CHARS:
            return list(self._tok.encode(text, add_special_tokens=False).ids)
        # ``encode`` holds the GIL throughout (seconds for a long prompt, stalling every
        # other thread, an event loop included); ``encode_batch`` releases it. Same ids.
        return list(self._tok.encode_batch([text], add_special_tokens=False)[0].ids)

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=False))

    def token_id(self, token: str) -> int:
        tid = self._tok.token_to_id(token)
        if tid is None:
            raise KeyError(f"token {token!r} is not in the vocabulary of {self.path}")
        return int(tid)

    @property
    def vocab_size(self) -> int:
        return int(self._tok.get_vocab_size(with_added_tokens=True))


class ByteCodec:
    """Each UTF-8 byte is a token; the ChatML markers are tokens 256 and 257.

    Deterministic and model-free: the tokenizer of ``ScriptedEngine``.
    """

    SPECIALS = (IM_START, IM_END, "<|endoftext|>")

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        rest = text
        while rest:
            cut, which = min(
                ((rest.find(s), i) for i, s in enumerate(self.SPECIALS) if s in rest),
                default=(-1, -1),
            )
            if cut < 0:
                ids.extend(rest.encode("utf-8"))
                break
            ids.extend(rest[:cut].encode("utf-8"))
            ids.append(256 + which)
            rest = rest[cut + len(self.SPECIALS[which]) :]
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        out: list[str] = []
        buf = bytearray()
        for i in ids:
            if i < 256:
                buf.append(i)
                continue
            out.append(buf.decode("utf-8", errors="replace"))
            buf.clear()
            out.append(self.SPECIALS[i - 256] if i - 256 < len(self.SPECIALS) else "")
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)

    def token_id(self, token: str) -> int:
        if token in self.SPECIALS:
            return 256 + self.SPECIALS.index(token)
        raw = token.encode("utf-8")
        if len(raw) == 1:
            return raw[0]
        raise KeyError(f"token {token!r} is not a single byte or marker")

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.SPECIALS)


class ChatTokenizer:
    """Renders chat messages (ChatML + Hermes tools) to token ids, one segment per message.

    Invariant (tested): ``sum(render_segment_ids(m, t, g), []) == render(m, t, g)``
    == ``encode`` of the Jinja template's text, for any messages.
    """

    def __init__(self, codec: TokenCodec) -> None:
        self.codec = codec
        self.im_end_id = codec.token_id(IM_END)
        self.im_start_id = codec.token_id(IM_START)

    @classmethod
    def from_folder(cls, folder: str | Path) -> ChatTokenizer:
        """Load the ``tokenizer.json`` of a model folder."""
        return cls(HFCodec(folder))

    def encode(self, text: str) -> list[int]:
        return self.codec.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.codec.decode(ids)

    @property
    def vocab_size(self) -> int:
        return self.codec.vocab_size

    def render_header(self, system: str | None, tools: Sequence[ToolSchema]) -> list[int]:
        return self.encode(render_header(system, tools))

    def render_message(self, msg: ChatMessage) -> list[int]:
        return self.encode(render_message(msg))

    @functools.cached_property
    def generation_prompt(self) -> tuple[int, ...]:
        """Opens the assistant's turn; appended before every generation."""
        return tuple(self.encode(GENERATION_PROMPT))

    @functools.cached_property
    def turn_close(self) -> tuple[int, ...]:
        """What follows a generated ``<|im_end|>`` so the next message can start."""
        return tuple(self.encode(f"{IM_END}\n"))[1:]

    def render_segment_ids(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSchema] = (),
        add_generation_prompt: bool = False,
    ) -> list[list[int]]:
        return [self.encode(s) for s in render_segments(messages, tools, add_generation_prompt)]

    def render(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSchema] = (),
        add_generation_prompt: bool = False,
    ) -> list[int]:
        """The whole conversation rendered as one text and tokenized once."""
        return self.encode("".join(render_segments(messages, tools, add_generation_prompt)))
