"""The lifecycle's view of journal-layout trees: seal, prove, delete (docs/leaf-journal.md).

:class:`JournalTrees` offers the lifecycle the same operations as
:class:`~relayminer.smst.redis_store.RedisSMSTStore` does for the Go node layout (``seal``,
``sealed_root``, ``prove_closest``, ``prove_closest_many``, ``delete``), so the claim and proof
phases do not care which layout stores the tree.

- ``seal`` builds the tree from the journal and seals it (:func:`seal_session_tree`); the built
  tree is kept in memory for the proof. ``seal_many``, ``prove_group`` and ``delete_many`` do
  the same for a whole claim or proof group in a fixed number of round trips; ``prebuild_many``
  builds the trees of sessions that are over before their claim window opens. Those two build
  with the replica's :class:`~relayminer.runtime.tree_builder.TreeBuilder` (in worker
  processes when ``lifecycle.tree_build_processes`` > 0).
- The cache is bounded by the number of leaves it holds (least recently used out first): a
  tree that fell out of it, or a tree sealed by another replica before a failover, is rebuilt
  deterministically from the journal, and its root is checked against the sealed ``:root``
  before anything is proved with it.

The seal writes the same root whoever runs it (the root depends only on the leaf set), so it
needs no atomic fence; a replica that knows it lost the lease still does not seal (it checks the
lease first, like every lifecycle write), and a delete runs fenced like the Go layout's.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from redis.asyncio import Redis

from relayminer.errors import LeaseLostError, RelayMinerError
from relayminer.keys import KeyBuilder
from relayminer.runtime.leases import Fence
from relayminer.runtime.script_batch import ScriptCall, raise_failed, run_script_calls
from relayminer.runtime.tree_builder import TreeBuilder
from relayminer.sessions import scripts
from relayminer.smst.journal import (
    JournalCorruptError,
    build_session_tree,
    read_leaves_many,
    seal_session_tree,
    seal_session_trees,
)
from relayminer.smst.nodes import DIGEST_SIZE, SMSTError
from relayminer.smst.proof import ClosestProof
from relayminer.smst.redis_store import SMSTNotSealedError
from relayminer.smst.trie import SparseMerkleSumTrie

__all__ = ["DEFAULT_CACHED_LEAVES", "JournalTreeMismatchError", "JournalTrees"]

log = logging.getLogger(__name__)

#: Leaves of sealed trees kept in memory per supplier for their proofs (roughly 1 KB of Python
#: objects per leaf). Past it the least recently used tree is dropped and rebuilt when needed.
DEFAULT_CACHED_LEAVES = 250_000


class JournalTreeMismatchError(SMSTError):
    """The tree rebuilt from the journal does not have the sealed root (leaves were lost)."""


class JournalTrees:
    """Journal-layout trees of one supplier, for the lifecycle."""

    #: the leaves and the counters are written by the same script (lifecycle/integrity.py)
    exact_counters = True
    #: trees are built from the journal, so they can be built before the claim
    builds_ahead = True

    def __init__(
        self,
        redis: Redis,
        supplier: str,
        *,
        keys: KeyBuilder | None = None,
        ttl_seconds: int = 7200,
        fence: Fence | None = None,
        max_cached_leaves: int = DEFAULT_CACHED_LEAVES,
        builder: TreeBuilder | None = None,
    ) -> None:
        self._redis = redis
        self.supplier = supplier
        self.keys = keys or KeyBuilder.for_client(redis)
        self.ttl = ttl_seconds
        self.fence = fence
        self.max_cached_leaves = max_cached_leaves
        #: the replica's tree builder (worker processes or the event loop)
        self.builder = builder if builder is not None else TreeBuilder(0)
        self._trees: OrderedDict[str, SparseMerkleSumTrie] = OrderedDict()
        self._cached_leaves = 0
        self._fenced_delete = redis.register_script(scripts.FENCED_DELETE)

    # --- cache ------------------------------------------------------------------------------
    @property
    def cached_sessions(self) -> list[str]:
        return list(self._trees)

    def forget(self, sid: str) -> None:
        trie = self._trees.pop(sid, None)
        if trie is not None:
            self._cached_leaves -= trie.count()

    def forget_all(self) -> None:
        self._trees.clear()
        self._cached_leaves = 0

    def _keep(self, sid: str, trie: SparseMerkleSumTrie) -> None:
        self.forget(sid)
        if trie.count() > self.max_cached_leaves:
            return
        self._trees[sid] = trie
        self._cached_leaves += trie.count()
        while self._cached_leaves > self.max_cached_leaves:
            _, old = self._trees.popitem(last=False)
            self._cached_leaves -= old.count()

    # --- claim and proof --------------------------------------------------------------------
    async def _check_lease(self, what: str) -> None:
        if self.fence is not None:
            current = await self._redis.get(self.fence.key)
            if current != self.fence.token.encode():
                raise LeaseLostError(f"lease of {self.supplier} lost: not {what}")

    async def seal(self, sid: str) -> bytes:
        """Seal the session's journal for its claim; the 48-byte claimed root. Sealing twice
        returns the first root; an empty or unknown session seals as the empty root."""
        await self._check_lease(f"sealing {sid}")
        result = await seal_session_tree(
            self._redis, self.supplier, sid, ttl_seconds=self.ttl, namespace=self.keys.ns
        )
        if result.trie is not None:
            self._keep(sid, result.trie)
        return result.root

    async def seal_many(self, sids: Sequence[str]) -> dict[str, bytes | RelayMinerError]:
        """:meth:`seal` of a claim group: one lease check, then the journals of the trees not
        built yet read in one round trip and built (by the replica's
        :class:`~relayminer.runtime.tree_builder.TreeBuilder`), and every tree sealed in one
        more (:func:`seal_session_trees`). Per session its root, or its own error."""
        await self._check_lease(f"sealing {len(sids)} sessions")
        prebuilt = {sid: self._trees[sid] for sid in sids if sid in self._trees}
        prebuilt.update(await self._build([sid for sid in sids if sid not in prebuilt]))
        results = await seal_session_trees(
            self._redis,
            self.supplier,
            sids,
            ttl_seconds=self.ttl,
            namespace=self.keys.ns,
            prebuilt=prebuilt,  # a corrupt journal is not: read again there, and reported
        )
        out: dict[str, bytes | RelayMinerError] = {}
        for sid, result in results.items():
            if isinstance(result, RelayMinerError):
                out[sid] = result
                continue
            if result.trie is not None:
                self._keep(sid, result.trie)
            out[sid] = result.root
        return out

    async def prebuild_many(
        self, sids: Sequence[str], *, deadline: float | None = None
    ) -> list[str]:
        """Build the trees of sessions not claimable yet, ahead of their claim (kept in the
        cache, then sealed by :meth:`seal_many` without reading their journal again: a claim
        window then costs one round trip and no tree build). Lowest priority: built in the
        event loop, it yields after each tree and starts no tree after ``deadline`` (event
        loop time); in worker processes, nothing starts after it. The ids built now, in order;
        a tree already cached is not built again, and a corrupt journal is left for the claim
        to report."""
        todo = [sid for sid in sids if sid not in self._trees]
        built = await self._build(todo, deadline=deadline, background=True)
        for sid, trie in built.items():
            self._keep(sid, trie)
        return list(built)

    async def _build(
        self, sids: Sequence[str], *, deadline: float | None = None, background: bool = False
    ) -> dict[str, SparseMerkleSumTrie]:
        """The trees of ``sids`` from their journals (one round trip), in order; a corrupt
        journal is left out, and so is any tree :meth:`TreeBuilder.build_many` did not start
        before ``deadline``. ``background``: built ahead, yielding between trees."""
        if not sids:
            return {}
        keys = [self.keys.smst_leaves_key(self.supplier, sid) for sid in sids]
        readable = [
            (sid, leaves)
            for sid, leaves in zip(sids, await read_leaves_many(self._redis, keys), strict=True)
            if not isinstance(leaves, JournalCorruptError)
        ]
        tries = await self.builder.build_many(
            [leaves for _, leaves in readable], deadline=deadline, background=background
        )
        return {sid: trie for (sid, _), trie in zip(readable, tries, strict=False)}

    async def sealed_root(self, sid: str) -> bytes | None:
        key = self.keys.smst_root_key(self.supplier, sid)
        root: bytes | None = await self._redis.get(key)  # type: ignore[assignment]
        return root if root is not None and len(root) == DIGEST_SIZE else None

    async def sealed_tree(self, sid: str) -> tuple[bytes, SparseMerkleSumTrie]:
        """The sealed root and its tree: the cached one, or rebuilt from the journal and
        checked against the sealed root (:class:`JournalTreeMismatchError` when it differs)."""
        return await self._tree_of(sid, await self.sealed_root(sid))

    async def _tree_of(self, sid: str, root: bytes | None) -> tuple[bytes, SparseMerkleSumTrie]:
        """The tree of ``sid`` whose sealed root is ``root`` (read by the caller)."""
        if root is None:
            raise SMSTNotSealedError(f"session {sid} has no sealed root")
        trie = self._trees.get(sid)
        if trie is not None and trie.root() == root:
            self._trees.move_to_end(sid)
            return root, trie
        trie = await build_session_tree(self._redis, self.supplier, sid, self.keys.ns)
        if trie.root() != root:
            self.forget(sid)
            raise JournalTreeMismatchError(
                f"session {sid}: the tree rebuilt from the journal ({trie.count()} leaves) "
                "does not have the sealed root"
            )
        log.info(
            "rebuilt a sealed tree from its journal",
            extra={"supplier": self.supplier, "session_id": sid, "leaves": trie.count()},
        )
        self._keep(sid, trie)
        return root, trie

    async def prove_closest(self, sid: str, path: bytes) -> tuple[bytes, ClosestProof]:
        """Closest proof of ``path`` against the sealed root; ``(root, proof)``."""
        root, trie = await self.sealed_tree(sid)
        return root, trie.prove_closest(path)

    async def prove_closest_many(
        self, sid: str, paths: Sequence[bytes]
    ) -> tuple[bytes, list[ClosestProof]]:
        root, trie = await self.sealed_tree(sid)
        return root, [trie.prove_closest(p) for p in paths]

    async def prove_group(
        self, paths: Mapping[str, bytes]
    ) -> dict[str, tuple[bytes, ClosestProof] | RelayMinerError]:
        """:meth:`prove_closest` of a proof group (session id -> path): every sealed root read
        in one round trip, each tree from the cache or rebuilt alone. Per session its
        ``(sealed root, proof)``, or its own error."""
        sids = list(paths)
        async with self._redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.get(self.keys.smst_root_key(self.supplier, sid))
            roots = await pipe.execute()
        out: dict[str, tuple[bytes, ClosestProof] | RelayMinerError] = {}
        for sid, raw in zip(sids, roots, strict=True):
            root = raw if isinstance(raw, bytes) and len(raw) == DIGEST_SIZE else None
            try:
                root, trie = await self._tree_of(sid, root)
                out[sid] = (root, trie.prove_closest(paths[sid]))
            except LeaseLostError:
                raise
            except RelayMinerError as err:
                out[sid] = err
        return out

    def _delete_call(self, sid: str) -> ScriptCall:
        fence_key = self.fence.key if self.fence else self.keys.miner_claim_key(self.supplier)
        token = self.fence.token if self.fence else ""
        keys = [
            self.keys.smst_leaves_key(self.supplier, sid),
            self.keys.smst_root_key(self.supplier, sid),
            self.keys.smst_stats_key(self.supplier, sid),
        ]
        return ScriptCall(self._fenced_delete, [fence_key, *keys], [token])

    async def delete(self, sid: str) -> None:
        """Drop the session's journal and sealed root (after it settled or failed for good);
        fenced."""
        await self.delete_many([sid])

    async def delete_many(self, sids: Sequence[str]) -> None:
        """:meth:`delete` of many sessions in one round trip (fenced, each)."""
        for sid in sids:
            self.forget(sid)
        replies = await run_script_calls(
            self._redis, [self._delete_call(sid) for sid in sids], one_by_one=self.keys.hash_tagged
        )
        raise_failed(replies, f"lease of {self.supplier} lost: not deleting {len(sids)} trees")
