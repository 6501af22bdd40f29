"""The read side of the SMSTs in Redis: keys, roots, node fetches and closest proofs.

:class:`RedisSMSTReader` reads what :class:`~relayminer.smst.redis_store.RedisSMSTStore` (its
subclass, the write side) commits; the key layout is described there. It is apart because
reading a stored tree (for a proof, a check before a claim, an inspection) needs none of the
writer's cache, transaction or fence: only the nodes a path needs, fetched in one round trip
(:data:`scripts.SMST_PREFETCH`) into a :class:`PrefetchStore`, so that neither an insert nor a
proof costs one round trip per node.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence

from redis.asyncio import Redis

from relayminer.keys import KeyBuilder
from relayminer.sessions import scripts as scripts
from relayminer.smst.nodes import DIGEST_SIZE, PLACEHOLDER, SMSTError
from relayminer.smst.proof import ClosestProof
from relayminer.smst.trie import SMSTNodeMissingError, SparseMerkleSumTrie

__all__ = ["PrefetchStore", "RedisSMSTReader", "SMSTNotSealedError"]


class SMSTNotSealedError(SMSTError):
    """A proof was asked for a session whose tree was never sealed."""


class PrefetchStore:
    """The MapStore under a Redis-backed trie: nodes fetched from Redis, and the changes of the
    next commit (recorded, then shipped to Redis by
    :class:`~relayminer.smst.redis_store.RedisSMSTStore`)."""

    __slots__ = ("deletes", "fetched", "sets")

    def __init__(self) -> None:
        self.fetched: dict[bytes, bytes] = {}
        self.sets: dict[bytes, bytes] = {}
        self.deletes: set[bytes] = set()

    def get(self, key: bytes) -> bytes | None:
        return self.fetched.get(key) or None  # an empty value is a missing node (Go)

    def set(self, key: bytes, value: bytes) -> None:
        self.sets[key] = value
        self.deletes.discard(key)

    def delete(self, key: bytes) -> None:
        self.deletes.add(key)
        self.sets.pop(key, None)

    def set_many(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        sets = self.sets
        sets.update(items)
        if self.deletes:  # invariant: no key is both set and deleted
            self.deletes.difference_update(sets)

    def delete_many(self, keys: Iterable[bytes]) -> None:
        if self.sets:
            for key in keys:
                self.delete(key)
        else:  # a commit deletes before it writes: the usual case
            self.deletes.update(keys)

    def take(self) -> tuple[dict[bytes, bytes], builtins.set[bytes]]:
        """The recorded writes and deletes (disjoint), which are then forgotten."""
        sets, deletes = self.sets, self.deletes
        self.sets, self.deletes = {}, set()
        return sets, deletes

    def __len__(self) -> int:
        return len(self.fetched)

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return self.fetched.items()


def _hex(digest: bytes) -> str:
    return digest.hex()


class RedisSMSTReader:
    """Reads the per-session SMSTs of one supplier stored in Redis."""

    def __init__(self, redis: Redis, supplier: str, *, keys: KeyBuilder | None = None) -> None:
        self._redis = redis
        self.supplier = supplier
        self.keys = keys or KeyBuilder.for_client(redis)
        self._prefetch = redis.register_script(scripts.SMST_PREFETCH)

    # --- keys -------------------------------------------------------------------------------
    def nodes_key(self, sid: str) -> str:
        return self.keys.smst_nodes_key(self.supplier, sid)

    def live_root_key(self, sid: str) -> str:
        return self.keys.smst_live_root_key(self.supplier, sid)

    def root_key(self, sid: str) -> str:
        return self.keys.smst_root_key(self.supplier, sid)

    def stats_key(self, sid: str) -> str:
        return self.keys.smst_stats_key(self.supplier, sid)

    # --- roots -------------------------------------------------------------------------------
    async def sealed_root(self, sid: str) -> bytes | None:
        root: bytes | None = await self._redis.get(self.root_key(sid))  # type: ignore[assignment]
        return root if root is not None and len(root) == DIGEST_SIZE else None

    async def live_root(self, sid: str) -> bytes | None:
        root: bytes | None = await self._redis.get(self.live_root_key(sid))  # type: ignore[assignment]
        return root if root is not None and len(root) == DIGEST_SIZE else None

    # --- nodes -------------------------------------------------------------------------------
    async def _fetch(
        self, sid: str, store: PrefetchStore, root: bytes, mode: str, paths: Sequence[bytes]
    ) -> None:
        if not paths or root == PLACEHOLDER:
            return
        flat = await self._prefetch(keys=[self.nodes_key(sid)], args=[root, mode, *paths])
        store.fetched.update(zip(flat[::2], flat[1::2], strict=True))

    async def _fetch_one(self, sid: str, store: PrefetchStore, digest: bytes) -> None:
        value: bytes | None = await self._redis.hget(  # type: ignore[assignment]
            self.nodes_key(sid), _hex(digest)
        )
        if not value:  # absent, or empty: a missing node (as in Go)
            raise SMSTNodeMissingError(digest)
        store.fetched[digest] = value

    # --- proofs ------------------------------------------------------------------------------
    async def prove_closest(self, sid: str, path: bytes) -> tuple[bytes, ClosestProof]:
        """Closest proof of ``path`` against the sealed root; returns ``(root, proof)``. The
        nodes are read from Redis in one batched round trip (plus one per node the prefetch
        missed, which does not happen on insert-only trees)."""
        root = await self.sealed_root(sid)
        if root is None:
            raise SMSTNotSealedError(f"session {sid} has no sealed root")
        store = PrefetchStore()
        trie = SparseMerkleSumTrie.import_root(store, root)
        await self._fetch(sid, store, root, "closest", [path])
        while True:
            try:
                return root, trie.prove_closest(path)
            except SMSTNodeMissingError as missing:
                await self._fetch_one(sid, store, missing.digest)

    async def prove_closest_many(
        self, sid: str, paths: Sequence[bytes]
    ) -> tuple[bytes, list[ClosestProof]]:
        """Closest proofs of every path against the sealed root, the nodes of all of them
        fetched in one round trip (the lifecycle's tree check before a claim). Raises
        :class:`SMSTNodeMissingError` when a node under the root is not stored."""
        root = await self.sealed_root(sid)
        if root is None:
            raise SMSTNotSealedError(f"session {sid} has no sealed root")
        store = PrefetchStore()
        trie = SparseMerkleSumTrie.import_root(store, root)
        await self._fetch(sid, store, root, "closest", paths)
        proofs = []
        for path in paths:
            while True:
                try:
                    proofs.append(trie.prove_closest(path))
                    break
                except SMSTNodeMissingError as missing:
                    await self._fetch_one(sid, store, missing.digest)
        return root, proofs

    async def load_trie(self, sid: str, root: bytes) -> SparseMerkleSumTrie:
        """The whole tree at ``root`` in memory (inspection and tests; not for the hot path)."""
        from relayminer.smst.mapstore import MemoryMapStore

        raw: dict[bytes, bytes] = await self._redis.hgetall(  # type: ignore[assignment]
            self.nodes_key(sid)
        )
        store = MemoryMapStore((bytes.fromhex(k.decode()), v) for k, v in raw.items())
        return SparseMerkleSumTrie.import_root(store, root)
