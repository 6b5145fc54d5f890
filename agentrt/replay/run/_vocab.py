"""The stable vocabulary: tokens whose text, in any order, tokenizes back to exactly them.

Replay turns token-count content into text (the orchestrator renders prompts from text),
so that text must encode back to the ids it was made from. For a byte-level BPE model the
stable entries are the single tokens spelled as a space plus 2-10 lowercase ASCII letters
(" cat"): the pre-tokenizer splits text at every such space, so each word is encoded on its
own and any concatenation of them gives back the same ids. Output text starts with a
"head" entry (the same letters without the space), because chat frameworks strip the
leading whitespace of a response before re-rendering it. For ``ByteCodec`` every lowercase
letter is one token and is both kinds of entry.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agentrt.engine import ByteCodec, ChatTokenizer, TokenCodec

_WORD = re.compile(r" [a-z]{2,10}")
_HEAD = re.compile(r"[a-z]{2,10}")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


class VocabularyError(ValueError):
    """The tokenizer has no usable stable vocabulary (or it failed its round-trip check)."""


@dataclass(frozen=True, slots=True)
class StableVocab:
    """Entries of a tokenizer's stable vocabulary, in a fixed (seedable) order.

    Invariants (checked by ``check_integrity``): ``words[i]`` encodes to ``[word_ids[i]]``
    and ``heads[i]`` to ``[head_ids[i]]``; the concatenation of any head followed by any
    words encodes to the concatenation of their ids.
    """

    words: tuple[str, ...]
    word_ids: tuple[int, ...]
    heads: tuple[str, ...]
    head_ids: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.words)

    def text(self, indices: Sequence[int], *, head: bool = False) -> str:
        """Text of entries ``indices`` (taken modulo the size); ``head``: the first is a head."""
        if not indices:
            return ""
        if head:
            first = self.heads[indices[0] % len(self.heads)]
            return first + "".join(self.words[i % len(self.words)] for i in indices[1:])
        return "".join(self.words[i % len(self.words)] for i in indices)

    def ids(self, indices: Sequence[int], *, head: bool = False) -> list[int]:
        """Token ids of the same entries as ``text(indices, head=head)``."""
        out = [self.word_ids[i % len(self.word_ids)] for i in indices]
        if head and indices:
            out[0] = self.head_ids[indices[0] % len(self.head_ids)]
        return out

    def shuffled(self, seed: int) -> StableVocab:
        """The same entries in a seeded order: a replay seed changes which token every
        content id becomes, while equal ids stay equal."""
        rng = np.random.default_rng([seed, 0x70CA])
        w = rng.permutation(len(self.words))
        h = rng.permutation(len(self.heads))
        return StableVocab(
            tuple(self.words[i] for i in w),
            tuple(self.word_ids[i] for i in w),
            tuple(self.heads[i] for i in h),
            tuple(self.head_ids[i] for i in h),
        )

    def check_integrity(self, codec: TokenCodec) -> None:
        """Assert the round-trip invariants against ``codec`` (one pass over everything)."""
        assert len(self.words) == len(self.word_ids), "words and ids out of sync"
        assert len(self.heads) == len(self.head_ids), "heads and ids out of sync"
        joined = "".join(self.words)
        assert codec.encode(joined) == list(self.word_ids), "words do not concatenate stably"
        for step in (1, 7):
            text = self.heads[0] + "".join(self.words[::step][:512])
            ids = [self.head_ids[0], *self.word_ids[::step][:512]]
            assert codec.encode(text) == ids, "a head followed by words does not re-encode"


def stable_vocab(tokenizer: ChatTokenizer) -> StableVocab:
    """The stable vocabulary of ``tokenizer`` (computed once per codec).

    Raises:
        VocabularyError: the codec has too few stable entries or fails the round trip.
    """
    return _for_codec(tokenizer.codec)  # type: ignore[arg-type]  # codecs hash by identity


@functools.cache
def _for_codec(codec: TokenCodec) -> StableVocab:
    if isinstance(codec, ByteCodec):
        ids = tuple(ord(c) for c in _LETTERS)
        vocab = StableVocab(tuple(_LETTERS), ids, tuple(_LETTERS), ids)
    else:
        vocab = _scan(codec)
    try:
        vocab.check_integrity(codec)
    except AssertionError as exc:
        raise VocabularyError(f"stable vocabulary failed its round trip: {exc}") from None
    return vocab


def _scan(codec: TokenCodec) -> StableVocab:
    words: list[tuple[str, int]] = []
    heads: list[tuple[str, int]] = []
    for tid in range(codec.vocab_size):
        text = codec.decode([tid])
        if _WORD.fullmatch(text) and codec.encode(text) == [tid]:
            words.append((text, tid))
        elif _HEAD.fullmatch(text) and codec.encode(text) == [tid]:
            heads.append((text, tid))
    if len(words) < 256 or not heads:
        raise VocabularyError(
            f"only {len(words)} word and {len(heads)} head tokens are stable: replay needs a "
            "byte-level BPE tokenizer (or ByteCodec)"
        )
    return StableVocab(
        tuple(w for w, _ in words),
        tuple(i for _, i in words),
        tuple(h for h, _ in heads),
        tuple(i for _, i in heads),
    )
