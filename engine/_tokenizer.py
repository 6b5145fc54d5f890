"""Token codecs (a model's tokenizer, or bytes for scripted tests) and the chat tokenizer.

``ChatTokenizer.render_segment_ids`` is what the orchestrator's token log is built on:
the token ids of each message, which concatenate to the ids of the whole conversation.
Content is always encoded as text: only the template's markers become special tokens.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ._chat import (
    GENERATION_PROMPT,
    IM_END,
    IM_START,
    TURN_END,
    render_header,
    render_message,
    render_segments,
)
from ._formats import ToolFormat, detect_tool_format, read_chat_template
from ._formats import tool_format as _format
from ._messages import ChatMessage, Marker, Piece
from ._types import ToolFormatName, ToolSchema

if TYPE_CHECKING:
    from tokenizers import Tokenizer


@runtime_checkable
class TokenCodec(Protocol):
    """Text <-> token ids.

    ``encode`` turns special-token strings (``<|im_start|>``) into their special tokens:
    for template markup and a model's own output. ``encode_text`` never does: every
    character is text, which is how content from users, tools and clients is encoded.
    """

    def encode(self, text: str) -> list[int]: ...

    def encode_text(self, text: str) -> list[int]: ...

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
        self._plain = _plain_copy(self._tok)
        self.path = path

    @classmethod
    def from_json_str(cls, text: str) -> HFCodec:
        """A codec from the text of a ``tokenizer.json`` (e.g. served by a remote engine)."""
        from tokenizers import Tokenizer

        codec = cls.__new__(cls)
        codec._tok = Tokenizer.from_str(text)
        codec._plain = _plain_copy(codec._tok)
        codec.path = Path("<remote>")
        return codec

    def encode(self, text: str) -> list[int]:
        if len(text) < _GIL_FREE_CHARS:
            return list(self._tok.encode(text, add_special_tokens=False).ids)
        # ``encode`` holds the GIL throughout (seconds for a long prompt, stalling every
        # other thread, an event loop included); ``encode_batch`` releases it. Same ids.
        return list(self._tok.encode_batch([text], add_special_tokens=False)[0].ids)

    def encode_text(self, text: str) -> list[int]:
        return list(self._plain.encode(text, add_special_tokens=False).ids)

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


def _plain_copy(tok: Tokenizer) -> Tokenizer:
    """A copy that encodes special-token strings as ordinary text. A copy, not a toggle
    of the shared one: encodes may run in several threads at once."""
    from tokenizers import Tokenizer

    plain = Tokenizer.from_str(tok.to_str())
    plain.encode_special_tokens = True
    return plain


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

    def encode_text(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

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
    """Renders chat messages (ChatML turns around a tool format) to token ids, per message.

    Invariants (tested): ``sum(render_segment_ids(m, t, g), []) == render(m, t, g)`` for
    any messages; a ``Marker`` piece is one special token when the vocabulary has it as
    one, and nothing else ever is, so the ids of ``<|im_start|>``/``<|im_end|>`` appear
    exactly where the template puts them, whatever the messages hold. With the Hermes
    format the ids are the model tokenizer's own encoding of the Jinja template's text
    whenever that text came from no content spelling a special token.

    Attributes:
        tool_format: how tools, calls and results are written (``with_tool_format``
            gives the same tokenizer with another).
    """

    def __init__(
        self, codec: TokenCodec, tool_format: ToolFormat | ToolFormatName = "hermes"
    ) -> None:
        self.codec = codec
        self.tool_format = (
            tool_format if isinstance(tool_format, ToolFormat) else _format(tool_format)
        )
        self._marker_ids: dict[str, int | None] = {}
        self.im_end_id = self._required_marker(IM_END)
        self.im_start_id = self._required_marker(IM_START)

    @classmethod
    def from_folder(
        cls, folder: str | Path, tool_format: ToolFormatName | None = None
    ) -> ChatTokenizer:
        """Load the ``tokenizer.json`` of a model folder (or that file itself); the tool
        format is the one the folder's chat template teaches (``detect_tool_format``)
        unless ``tool_format`` is given."""
        name = tool_format or detect_tool_format(read_chat_template(folder))
        return cls(HFCodec(folder), name)

    def with_tool_format(self, name: ToolFormatName | None) -> ChatTokenizer:
        """This tokenizer rendering ``name``'s format (itself for None or its own)."""
        if name is None or name == self.tool_format.name:
            return self
        other = copy.copy(self)
        other.tool_format = _format(name)
        return other

    def encode(self, text: str) -> list[int]:
        """Special-token strings become special tokens: for markup and model output only."""
        return self.codec.encode(text)

    def encode_text(self, text: str) -> list[int]:
        """Every character is text (how message content is always encoded)."""
        return self.codec.encode_text(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.codec.decode(ids)

    @property
    def vocab_size(self) -> int:
        return self.codec.vocab_size

    def marker_id(self, marker: str) -> int | None:
        """The special token spelling ``marker``, or None when the vocabulary has none."""
        if marker not in self._marker_ids:
            ids = self.codec.encode(marker)
            special = len(ids) == 1 and ids != self.codec.encode_text(marker)
            self._marker_ids[marker] = ids[0] if special else None
        return self._marker_ids[marker]

    def _required_marker(self, marker: str) -> int:
        tid = self.marker_id(marker)
        if tid is None:
            raise ValueError(
                f"the vocabulary has no {marker} special token: agentrt renders ChatML "
                "turns, and this model was not trained on them"
            )
        return tid

    def encode_pieces(self, pieces: Sequence[Piece]) -> list[int]:
        """Markers as their special tokens; each run of text between them encoded as text.

        Splitting at special tokens is what the model's tokenizer does itself, so for
        content without special-token strings the ids equal its whole-text encoding.
        """
        ids: list[int] = []
        run: list[str] = []
        for p in pieces:
            tid = self.marker_id(p.text) if isinstance(p, Marker) else None
            if tid is None:
                run.append(p.text if isinstance(p, Marker) else p)
                continue
            if run:
                ids += self.codec.encode_text("".join(run))
                run.clear()
            ids.append(tid)
        if run:
            ids += self.codec.encode_text("".join(run))
        return ids

    def render_header(self, system: str | None, tools: Sequence[ToolSchema]) -> list[int]:
        return self.encode_pieces(render_header(system, tools, self.tool_format))

    def render_message(self, msg: ChatMessage) -> list[int]:
        return self.encode_pieces(render_message(msg, self.tool_format))

    @functools.cached_property
    def generation_prompt(self) -> tuple[int, ...]:
        """Opens the assistant's turn; appended before every generation."""
        return tuple(self.encode_pieces(GENERATION_PROMPT))

    @functools.cached_property
    def turn_close(self) -> tuple[int, ...]:
        """What follows a generated ``<|im_end|>`` so the next message can start."""
        closing = self.encode_pieces(TURN_END)
        assert closing[0] == self.im_end_id, "the turn's end does not start with <|im_end|>"
        return tuple(closing[1:])

    def render_segment_ids(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSchema] = (),
        add_generation_prompt: bool = False,
    ) -> list[list[int]]:
        segments = render_segments(messages, tools, add_generation_prompt, self.tool_format)
        return [self.encode_pieces(s) for s in segments]

    def render(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSchema] = (),
        add_generation_prompt: bool = False,
    ) -> list[int]:
        """The whole conversation encoded in one pass over its pieces."""
        segments = render_segments(messages, tools, add_generation_prompt, self.tool_format)
        return self.encode_pieces([p for s in segments for p in s])
