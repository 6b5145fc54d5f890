"""Deterministic token ids for token-count content, so replay reproduces recorded sharing.

A hash id always becomes the same block of token ids (a partial last block is that
block's leading part), so equal ids give equal tokens across requests and runs; content
without hash ids gets ids derived from a caller-chosen key, shared with nothing else.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from ._schema import TokenContent


@functools.lru_cache(maxsize=65536)
def _block(hash_id: int, size: int, low: int, high: int) -> tuple[int, ...]:
    rng = np.random.default_rng([hash_id, size, 0x5EED])
    return tuple(rng.integers(low, high, size=size).tolist())


def content_token_ids(
    content: TokenContent, *, block_tokens: int | None, key: str, low: int, high: int
) -> list[int]:
    """Token ids in ``[low, high)`` for ``content``.

    Args:
        content: token-count content (text content is tokenized by the model instead).
        block_tokens: the trace header's ``hash_block_tokens``.
        key: names unique content (e.g. ``"<request id>/calls.2.output"``); the same key
            gives the same ids, so baseline and optimized runs see identical tokens.
        low, high: the id range to draw from (keep the model's special tokens out).

    Raises:
        ValueError: when hash ids are present but ``block_tokens`` is not.
    """
    if not 0 <= low < high:
        raise ValueError(f"need 0 <= low < high, got [{low}, {high})")
    if content.hash_ids is None:
        seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
        drawn = np.random.default_rng(seed).integers(low, high, size=content.tokens)
        return [int(x) for x in drawn]
    if block_tokens is None:
        raise ValueError("content has hash ids but the trace declares no hash_block_tokens")
    ids: list[int] = []
    for h in content.hash_ids:
        ids.extend(_block(h, block_tokens, low, high))
    return ids[: content.tokens]
