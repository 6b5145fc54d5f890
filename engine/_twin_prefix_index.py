"""The router's picture of what each replica has cached: an approximate prefix tree.

vllm-router's ``cache_aware`` policy never asks a replica what it holds. It remembers
every prompt it sent to each replica in a multi-tenant radix tree of characters, trims
each replica's share to a size budget by evicting least recently used leaves, and asks
the tree which replica's remembered text shares the longest prefix with a new prompt.
``PrefixIndex`` keeps the same picture at block granularity: a prompt is a chain of
block hashes, each hash naming its whole prefix, so "replica r holds hash h" means r was
sent a prompt that starts with the tokens ``h`` stands for.

::

    prompt   [ b0 | b1 | b2 | b3 | tail<block ]
    hashes     h0   h1   h2   h3                h_k = hash(h_{k-1}, tokens of b_k)
    match      longest k with some replica holding h0..h_k (a chain is kept whole:
               eviction takes a replica's least recently touched hash first, and an
               insert touches h_k before h_{k-1} ... h0, so leaves go before their prefix)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PrefixMatch:
    """The longest remembered prefix of a prompt.

    Attributes:
        tokens: prompt tokens in the longest prefix some replica was sent (whole blocks).
        prompt_tokens: the prompt's length (the router's match rate divides by it).
        holders: the replicas that were sent that prefix, most recently touched first.
    """

    tokens: int
    prompt_tokens: int
    holders: tuple[int, ...]

    @property
    def rate(self) -> float:
        return self.tokens / self.prompt_tokens if self.prompt_tokens else 0.0


class PrefixIndex:
    """Per-replica memory of the prompts a router sent, as block-hash chains.

    Invariants: ``_owners[h]`` maps each replica remembering hash ``h`` to the epoch it
    last touched it, and ``_lru[r]`` lists exactly the hashes replica ``r`` remembers,
    least recently touched first; a replica remembers at most ``max_tokens`` tokens
    (``max_tokens // block`` hashes), the rest evicted oldest first on insert.
    """

    def __init__(self, replicas: int, *, block: int, max_tokens: int) -> None:
        if block < 1 or max_tokens < block:
            raise ValueError("PrefixIndex needs block >= 1 and max_tokens >= block")
        self.block = block
        self.max_hashes = max_tokens // block
        self._owners: dict[int, dict[int, int]] = {}
        self._lru: list[OrderedDict[int, None]] = [OrderedDict() for _ in range(replicas)]
        self._epoch = 0

    def chain(self, prompt: Sequence[int]) -> list[int]:
        """The hash of every whole block of ``prompt``, each naming the prefix up to it."""
        out: list[int] = []
        h = 0
        b = self.block
        for start in range(0, len(prompt) - b + 1, b):
            h = hash((h, tuple(prompt[start : start + b])))
            out.append(h)
        return out

    def match(self, prompt: Sequence[int], chain: Sequence[int] | None = None) -> PrefixMatch:
        """The longest prefix of ``prompt`` some replica was sent, and who was."""
        hashes = self.chain(prompt) if chain is None else chain
        depth = 0
        holders: dict[int, int] = {}
        for h in hashes:
            owners = self._owners.get(h)
            if not owners:
                break
            depth += 1
            holders = owners
        ranked = sorted(holders, key=lambda r: -holders[r])
        return PrefixMatch(depth * self.block, len(prompt), tuple(ranked))

    def insert(self, replica: int, chain: Sequence[int]) -> None:
        """Remember that ``replica`` was sent the prompt ``chain`` hashes (touches all)."""
        self._epoch += 1
        lru = self._lru[replica]
        # Deepest first, so a prefix is always touched after its extensions and LRU
        # eviction takes leaves before the blocks they extend.
        for h in reversed(chain):
            self._owners.setdefault(h, {})[replica] = self._epoch
            lru[h] = None
            lru.move_to_end(h)
        while len(lru) > self.max_hashes:
            old, _ = lru.popitem(last=False)
            owners = self._owners[old]
            del owners[replica]
            if not owners:
                del self._owners[old]

    def remembered_tokens(self, replica: int) -> int:
        """Tokens the router believes ``replica`` holds (its share of the tree)."""
        return len(self._lru[replica]) * self.block

    def check_integrity(self) -> None:
        """Assert the two views (by hash, by replica) agree."""
        for r, lru in enumerate(self._lru):
            assert len(lru) <= self.max_hashes, f"replica {r} remembers past its budget"
            for h in lru:
                assert r in self._owners.get(h, {}), f"replica {r}'s hash {h} lost its owner"
        for h, owners in self._owners.items():
            assert owners, f"hash {h} kept with no owner"
            for r in owners:
                assert h in self._lru[r], f"hash {h} names replica {r}, which forgot it"
