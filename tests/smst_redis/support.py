"""Helpers of the Redis SMST store tests: relay-like leaves, the in-memory oracle, Redis reads."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from redis.asyncio import Redis

from relayminer.smst.mapstore import MemoryMapStore
from relayminer.smst.nodes import leaf_payload
from relayminer.smst.redis_store import RedisSMSTStore
from relayminer.smst.trie import SparseMerkleSumTrie

Leaf = tuple[bytes, bytes, int]

SUPPLIER = "pokt1supplier"
TTL = 5000


def relay_leaves(rng: random.Random, n: int) -> list[Leaf]:
    """``n`` relay-like leaves: 200-300 random bytes, key = sha256(value), assorted weights."""
    out = []
    for _ in range(n):
        value = rng.randbytes(rng.randint(200, 300))
        out.append((hashlib.sha256(value).digest(), value, rng.choice([1, 7, 42, 1000])))
    return out


def batched(leaves: Sequence[Leaf], sizes: Iterable[int]) -> list[list[Leaf]]:
    """``leaves`` cut into consecutive batches of the given sizes (the last takes the rest)."""
    out, i = [], 0
    for size in sizes:
        if i >= len(leaves):
            break
        out.append(list(leaves[i : i + size]))
        i += size
    if i < len(leaves):
        out.append(list(leaves[i:]))
    return out


def memory_trie(leaves: Iterable[Leaf]) -> SparseMerkleSumTrie:
    """The oracle: an in-memory trie of ``leaves`` inserted in order, committed."""
    trie = SparseMerkleSumTrie(MemoryMapStore())
    for leaf in leaves:
        trie.update(*leaf)
    trie.commit()
    return trie


def memory_nodes(trie: SparseMerkleSumTrie) -> dict[bytes, bytes]:
    return dict(trie.store.items())


def canonical_leaves(leaves: Iterable[Leaf]) -> list[tuple[bytes, bytes]]:
    """``(path, payload)`` pairs for :func:`relayminer.smst.nodes.calc_root`."""
    return [(hashlib.sha256(k).digest(), leaf_payload(v, w)) for k, v, w in leaves]


async def stored_nodes(redis: Redis, store: RedisSMSTStore, sid: str) -> dict[bytes, bytes]:
    """The session's nodes hash as digest -> preimage; every field must be lowercase hex of a
    48-byte digest."""
    raw: dict[bytes, bytes] = await redis.hgetall(store.nodes_key(sid))  # type: ignore[assignment]
    out = {}
    for field, value in raw.items():
        text = field.decode()
        assert len(text) == 96 and text == text.lower(), field
        out[bytes.fromhex(text)] = value
    return out


async def snapshot(redis: Redis, store: RedisSMSTStore, sid: str) -> dict[str, Any]:
    """Everything the store keeps for a session (to show that nothing changed)."""
    return {
        "nodes": await stored_nodes(redis, store, sid),
        "live_root": await redis.get(store.live_root_key(sid)),
        "root": await redis.get(store.root_key(sid)),
        "stats": await redis.get(store.stats_key(sid)),
    }


class CommandCounter:
    """Counts the commands a client issues through ``execute_command`` (scripts included)."""

    def __init__(self, redis: Redis) -> None:
        self.commands: list[str] = []
        inner: Callable[..., Awaitable[Any]] = redis.execute_command

        async def counting(*args: Any, **options: Any) -> Any:
            self.commands.append(str(args[0]))
            return await inner(*args, **options)

        redis.execute_command = counting  # type: ignore[method-assign]
