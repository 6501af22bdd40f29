"""Helpers of the leaf-journal tests: relay-like leaves and the incremental-trie oracle."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable

from relayminer.smst.trie import SparseMerkleSumTrie

Leaf = tuple[bytes, bytes, int]

SUPPLIER = "pokt1supplier"
SESSION = "session-1"
TTL = 5000


def relay_leaves(
    rng: random.Random, n: int, weights: Iterable[int] = (1, 7, 42, 1000)
) -> list[Leaf]:
    """``n`` relay-like leaves: 200-300 random bytes, key = sha256(value)."""
    choices = list(weights)
    out = []
    for _ in range(n):
        value = rng.randbytes(rng.randint(200, 300))
        out.append((hashlib.sha256(value).digest(), value, rng.choice(choices)))
    return out


def oracle_root(leaves: Iterable[Leaf]) -> bytes:
    """Root of the leaves inserted one by one into an in-memory trie (the reference)."""
    trie = SparseMerkleSumTrie()
    for leaf in leaves:
        trie.update(*leaf)
    return trie.root()
