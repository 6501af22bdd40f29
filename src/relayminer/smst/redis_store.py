"""SMSTs in Redis: the miner's per-session trees, resumable by any replica (and by Go miners).

Keys per supplier and session (spec/miner_core.md §6.5, spec/smst.md §7.2):

======================================  ======  ===============================================
``ha:smst:{supplier}:{session}:nodes``  HASH    field = lowercase hex of the 48-byte digest,
                                                value = the raw node preimage
``...:live_root``                       STRING  48-byte root of the last committed tree
``...:root``                            STRING  48-byte sealed (claimed) root
``...:stats``                           STRING  ``"<count>:<sum>"`` of the sealed root
======================================  ======  ===============================================

A batch of updates is committed in **one** atomic step, a ``MULTI``/``EXEC`` transaction under
``WATCH``: orphans deleted, new nodes written, ``live_root`` moved and TTLs slid together, and
only if ``live_root`` is still the root this writer built on (compare-and-set), the tree is not
sealed and the writer's lease (fence) still holds. So after a crash at any instant ``live_root``
names a complete tree, and two writers of one session can never interleave half-trees: the loser
reloads and replays its leaves.

Why a transaction and not a Lua script: a batch of 500 leaves into a 100,000-leaf tree deletes
about 3,800 hash fields and writes 4,900. Passed to a script, every one of them becomes a Lua
string and then a Redis string again: the server took about twice as long (~15 ms against ~7 ms
per batch) as for the same ``HDEL``/``HSET`` sent as plain commands inside ``MULTI``. And
redis-py's asyncio encoder costs about 1 µs per argument, so the commit's commands are encoded
here straight to RESP (the hex fields of all digests in one ``binascii.hexlify`` call) and
written on a connection taken from the client's pool (see ``bench/bench_smst_redis.py``).

Trees are kept in memory between batches (an LRU per supplier). A tree resumed from Redis is
imported lazily at its root; the nodes a batch will touch are fetched in one round trip
(:data:`scripts.SMST_PREFETCH`), and so are the nodes of a closest proof, so neither an insert
nor a proof costs one round trip per node.
"""

from __future__ import annotations

import binascii
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from relayminer.errors import LeaseLostError, RelayMinerError
from relayminer.keys import KeyBuilder
from relayminer.runtime.leases import Fence
from relayminer.sessions import scripts as scripts
from relayminer.smst.nodes import DIGEST_SIZE, PLACEHOLDER, SMSTError, digest_count, digest_sum
from relayminer.smst.proof import ClosestProof
from relayminer.smst.redis_reader import PrefetchStore, RedisSMSTReader, SMSTNotSealedError
from relayminer.smst.trie import SMSTNodeMissingError, SparseMerkleSumTrie

log = logging.getLogger(__name__)

#: Root of the empty tree (48 zero bytes).
EMPTY_ROOT = PLACEHOLDER


class SMSTSealedError(SMSTError):
    """The session's tree is sealed for its claim: no more updates."""


class SMSTCommitConflictError(SMSTError):
    """Other writers kept moving the session's ``live_root``; the commit gave up."""


@dataclass
class _Tree:
    trie: SparseMerkleSumTrie
    store: PrefetchStore
    live_root: bytes | None  # what Redis holds, as far as this tree knows (None: no key yet)


# --- RESP encoding of the commit -----------------------------------------------------------------

_HEX_FIELD_SEP = b"\r\n$96\r\n"  # between two 96-character hex fields of a command
_HSET_PAIR = b"$96\r\n%s\r\n$%d\r\n%s\r\n"  # one field (hex digest) and its value (preimage)


def _resp(*args: bytes) -> bytes:
    """One command in RESP (the Redis protocol)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def _resp_hdel(key: bytes, digests: Collection[bytes]) -> list[bytes]:
    """``HDEL key <hex digest>...`` in RESP, in pieces (the big one is not copied again): the hex
    of all digests is computed in one call, with a separator every 48 bytes that becomes the
    RESP framing."""
    head = b"*%d\r\n$4\r\nHDEL\r\n$%d\r\n%s\r\n$96\r\n" % (len(digests) + 2, len(key), key)
    fields = binascii.hexlify(b"".join(digests), b"|", DIGEST_SIZE)
    return [head, fields.replace(b"|", _HEX_FIELD_SEP), b"\r\n"]


def _resp_hset(key: bytes, nodes: dict[bytes, bytes]) -> list[bytes]:
    """``HSET key <hex digest> <preimage> ...`` in RESP, in pieces; the pairs are formatted in
    one ``%`` call."""
    n = len(nodes)
    values = list(nodes.values())
    args: list[bytes | int] = [b""] * (3 * n)
    args[0::3] = binascii.hexlify(b"".join(nodes), b"|", DIGEST_SIZE).split(b"|")
    args[1::3] = map(len, values)
    args[2::3] = values
    head = b"*%d\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n" % (2 * n + 2, len(key), key)
    return [head, (_HSET_PAIR * n) % tuple(args)]


def _coalesce(pieces: Iterable[bytes], small: int = 65536) -> list[bytes]:
    """``pieces`` with each run of small ones joined: the writes of one request, big pieces
    passed on as they are (joining them would copy megabytes once more)."""
    out: list[bytes] = []
    run: list[bytes] = []
    for piece in pieces:
        if len(piece) < small:
            run.append(piece)
            continue
        if run:
            out.append(b"".join(run))
            run = []
        out.append(piece)
    if run:
        out.append(b"".join(run))
    return out


_MULTI = _resp(b"MULTI")
_EXEC = _resp(b"EXEC")
_DISCARD = _resp(b"DISCARD")

#: Results of one commit attempt.
_COMMITTED, _CONFLICT, _SEALED, _FENCED, _WRONGTYPE = 0, 1, 2, 3, 4


class RedisSMSTStore(RedisSMSTReader):
    """Per-session SMSTs of one supplier, stored in Redis (the write side; reads are inherited)."""

    #: the tree is committed before its accounting step, so it may run ahead of the counters
    exact_counters = False
    #: nothing to build ahead: the relay worker keeps the tree up to date
    builds_ahead = False

    def __init__(
        self,
        redis: Redis,
        supplier: str,
        *,
        keys: KeyBuilder | None = None,
        ttl_seconds: int = 7200,
        fence: Fence | None = None,
        max_cached_trees: int = 64,
    ) -> None:
        super().__init__(redis, supplier, keys=keys)
        self.ttl = ttl_seconds
        self.fence = fence
        self._trees: OrderedDict[str, _Tree] = OrderedDict()
        self._max = max_cached_trees
        self._seal = redis.register_script(scripts.SMST_SEAL)
        self._fenced_set = redis.register_script(scripts.FENCED_SET)
        self._fenced_delete = redis.register_script(scripts.FENCED_DELETE)

    def _fence_args(self) -> tuple[str, str]:
        if self.fence is None:
            return self.keys.miner_claim_key(self.supplier), ""
        return self.fence.key, self.fence.token

    # --- cache ------------------------------------------------------------------------------
    def forget(self, sid: str) -> None:
        self._trees.pop(sid, None)

    def forget_all(self) -> None:
        self._trees.clear()

    async def _load(self, sid: str) -> _Tree | None:
        """The session's tree (cached, resumed from ``live_root`` or new); None when sealed."""
        tree = self._trees.get(sid)
        if tree is not None:
            self._trees.move_to_end(sid)
            return tree
        replies: list[bytes | None] = await self._redis.mget(  # type: ignore[assignment]
            self.root_key(sid), self.live_root_key(sid)
        )
        sealed, live = replies
        if sealed is not None:
            if len(sealed) == DIGEST_SIZE:
                return None
            log.warning("discarding invalid sealed root", extra={"session_id": sid})
            await self._redis.delete(self.root_key(sid))
        store = PrefetchStore()
        if live is not None and len(live) != DIGEST_SIZE:
            log.warning("discarding invalid live root", extra={"session_id": sid})
            await self._redis.delete(self.live_root_key(sid))
            live = None
        if live is None:
            tree = _Tree(SparseMerkleSumTrie(store), store, None)
        else:
            tree = _Tree(SparseMerkleSumTrie.import_root(store, live), store, live)
        self._trees[sid] = tree
        while len(self._trees) > self._max:
            self._trees.popitem(last=False)
        return tree

    # --- relay path -------------------------------------------------------------------------
    async def apply(self, sid: str, leaves: Sequence[tuple[bytes, bytes, int]]) -> bool:
        """Insert ``(key, value, weight)`` leaves into the session's tree and commit them in one
        atomic step. Returns False (nothing written) when the tree is sealed. Replaying leaves
        that are already in the tree writes nothing."""
        for _attempt in range(8):
            tree = await self._load(sid)
            if tree is None:
                return False
            try:
                code = await self._apply_once(sid, tree, leaves)
            except SMSTNodeMissingError:
                self.forget(sid)
                if await self.live_root(sid) != tree.live_root:
                    # Our tree is stale: another writer committed and deleted the orphans
                    # it still references. Reload and replay, like a CAS conflict.
                    continue
                raise  # the stored tree itself is incomplete
            except BaseException:
                self.forget(sid)  # the in-memory tree may hold uncommitted changes
                raise
            if code == 0:
                return True
            self.forget(sid)
            if code == 2:
                return False
            log.info("live_root moved under us, reloading", extra={"session_id": sid})
        raise SMSTCommitConflictError(f"session {sid}: live_root kept moving; giving up")

    async def _apply_once(
        self, sid: str, tree: _Tree, leaves: Sequence[tuple[bytes, bytes, int]]
    ) -> int:
        trie, store = tree.trie, tree.store
        bulk_fetched = False
        for i, (key, value, weight) in enumerate(leaves):
            while True:
                try:
                    trie.update(key, value, weight)
                    break
                except SMSTNodeMissingError as missing:
                    if not bulk_fetched:
                        # First miss of the batch (a resumed tree still has lazy nodes): fetch
                        # what every remaining path needs in one round trip.
                        bulk_fetched = True
                        paths = [hashlib.sha256(k).digest() for k, _, _ in leaves[i:]]
                        assert tree.live_root is not None  # a new tree has no lazy nodes
                        await self._fetch(sid, store, tree.live_root, "insert", paths)
                        if missing.digest not in store.fetched:
                            await self._fetch_one(sid, store, missing.digest)
                    else:
                        await self._fetch_one(sid, store, missing.digest)
        store.fetched.clear()
        trie.commit()
        new_root = trie.root()
        sets, deletes = store.take()
        if new_root == tree.live_root or not (sets or deletes):
            # A replay of leaves already in the cached tree. The stored tree is this very tree
            # only if ``live_root`` still names it: after a failover to a replica that missed
            # the last commits (or any loss of them), the cache holds leaves Redis does not.
            # Treated as a conflict, the tree is reloaded from Redis and the leaves replayed.
            if await self.live_root(sid) != tree.live_root:
                return _CONFLICT
            return _COMMITTED
        code = await self._ship(sid, tree.live_root, new_root, sets, deletes)
        if code == _COMMITTED:
            tree.live_root = new_root
        return code

    async def _ship(
        self,
        sid: str,
        expected: bytes | None,
        new_root: bytes,
        sets: dict[bytes, bytes],
        deletes: set[bytes],
    ) -> int:
        """Commit one batch's changes in one ``MULTI``/``EXEC`` under ``WATCH``: delete the
        orphans, write the new nodes, set ``live_root`` and slide both TTLs, provided that
        ``live_root`` is still ``expected`` (None: absent), the tree is not sealed and the fence
        holds. Returns ``_COMMITTED``, ``_CONFLICT`` (live_root moved, or a watched key changed
        before ``EXEC``) or ``_SEALED``; raises :class:`LeaseLostError` when fenced off.

        One request carries ``WATCH``, ``MGET`` of the watched keys, ``TYPE`` of the nodes key,
        ``MULTI`` and the queued commands; the checks are made on the replies that come back
        first (a nodes key that is not a hash is refused, as ``EXEC`` would run the ``SET`` of
        ``live_root`` even though ``HSET`` failed), and the
        transaction is then executed or discarded. Any failure midway closes the connection,
        which discards the transaction on the server: nothing is written.
        """
        if self.keys.hash_tagged:  # no pooled connection to WATCH on (config refuses it too)
            raise ValueError(
                "smst.layout: go cannot commit on a Redis Cluster; use the journal layout"
            )
        fence_key, token = self._fence_args()
        nodes = self.nodes_key(sid).encode()
        live = self.live_root_key(sid).encode()
        watched = [live, self.root_key(sid).encode()]
        if token:
            watched.append(fence_key.encode())
        ttl = str(self.ttl).encode()
        queued: list[list[bytes]] = []  # the commands of the transaction, in pieces
        if deletes:  # before the writes (a node re-created under an orphan's digest survives)
            queued.append(_resp_hdel(nodes, deletes))
        if sets:
            queued.append(_resp_hset(nodes, sets))
        queued += [
            [_resp(b"SET", live, new_root)],
            [_resp(b"EXPIRE", nodes, ttl)],
            [_resp(b"EXPIRE", live, ttl)],
        ]
        request = _coalesce(
            [_resp(b"WATCH", *watched), _resp(b"MGET", *watched), _resp(b"TYPE", nodes), _MULTI]
            + [piece for command in queued for piece in command]
        )
        pool = self._redis.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        clean = False  # the connection is back to its normal state (no WATCH, no MULTI)
        try:
            for i, piece in enumerate(request):
                await conn.send_packed_command(piece, check_health=i == 0)
            await conn.read_response(disable_decoding=True)  # WATCH: OK
            current: list[bytes | None] = await conn.read_response(disable_decoding=True)
            nodes_type = await conn.read_response(disable_decoding=True)
            await conn.read_response(disable_decoding=True)  # MULTI: OK
            if token and current[2] != token.encode():
                code = _FENCED
            elif nodes_type not in (b"hash", b"none"):
                # HDEL/HSET would fail inside EXEC while SET live_root succeeded: refuse.
                code = _WRONGTYPE
            elif current[1] is not None:
                code = _SEALED
            elif (current[0] or b"") != (expected or b""):
                code = _CONFLICT
            else:
                code = _COMMITTED
            # Sent before the QUEUED replies are read: no extra round trip. DISCARD also
            # UNWATCHes; EXEC fails (EXECABORT) if a command could not be queued (e.g. OOM).
            await conn.send_packed_command(
                _EXEC if code == _COMMITTED else _DISCARD, check_health=False
            )
            queue_error: ResponseError | None = None
            for _ in queued:
                try:
                    await conn.read_response(disable_decoding=True)  # QUEUED
                except ResponseError as err:
                    queue_error = queue_error or err
            final: list[object] | bytes | ResponseError | None
            try:
                final = await conn.read_response(disable_decoding=True)
            except ResponseError as err:
                final = err
            clean = True
        finally:
            if not clean:
                await conn.disconnect()
            await pool.release(conn)
        if code == _FENCED:
            raise LeaseLostError(f"FENCED lease lost: {fence_key}")
        if code == _WRONGTYPE:
            raise ResponseError(f"WRONGTYPE {self.nodes_key(sid)} is a {nodes_type!r}, not a hash")
        if code != _COMMITTED:
            return code
        if queue_error is not None:
            raise queue_error
        if isinstance(final, ResponseError):
            raise final
        if final is None:  # a watched key changed after the WATCH
            return _CONFLICT
        assert isinstance(final, list)
        for reply in final:
            if isinstance(reply, ResponseError):  # e.g. WRONGTYPE
                raise reply
        return _COMMITTED

    # --- claim and proof --------------------------------------------------------------------
    async def seal(self, sid: str) -> bytes:
        """Seal the session's tree for its claim and return the 48-byte claimed root. Later
        updates are refused; sealing twice returns the same root. An empty or unknown tree
        seals as the empty root (count 0)."""
        fence_key, token = self._fence_args()
        keys = [self.root_key(sid), self.live_root_key(sid), self.nodes_key(sid), fence_key]
        try:
            root: bytes = await self._seal(keys=keys, args=[self.ttl, EMPTY_ROOT, token])
        except ResponseError as err:
            _raise_fenced(err)
            raise
        self.forget(sid)
        stats = f"{digest_count(root)}:{digest_sum(root)}"
        try:
            await self._fenced_set(
                keys=[fence_key, self.stats_key(sid)], args=[token, stats, self.ttl]
            )
        except ResponseError as err:
            _raise_fenced(err)
            raise
        return root

    # --- a group at once (the Go layout's tree operations are per session) -----------------
    async def seal_many(self, sids: Sequence[str]) -> dict[str, bytes | RelayMinerError]:
        """:meth:`seal` of each session of a claim group: per session its root, or its error."""
        out: dict[str, bytes | RelayMinerError] = {}
        for sid in sids:
            try:
                out[sid] = await self.seal(sid)
            except LeaseLostError:
                raise
            except RelayMinerError as err:
                out[sid] = err
        return out

    async def prove_group(
        self, paths: Mapping[str, bytes]
    ) -> dict[str, tuple[bytes, ClosestProof] | RelayMinerError]:
        """:meth:`prove_closest` of each session of a proof group (session id -> path)."""
        out: dict[str, tuple[bytes, ClosestProof] | RelayMinerError] = {}
        for sid, path in paths.items():
            try:
                out[sid] = await self.prove_closest(sid, path)
            except LeaseLostError:
                raise
            except RelayMinerError as err:
                out[sid] = err
        return out

    async def prebuild_many(
        self, sids: Sequence[str], *, deadline: float | None = None
    ) -> list[str]:
        """Nothing to build ahead: a Go-layout tree is kept up to date by the relay worker."""
        return []

    async def delete_many(self, sids: Sequence[str]) -> None:
        """:meth:`delete` of each session."""
        for sid in sids:
            await self.delete(sid)

    async def delete(self, sid: str) -> None:
        """Drop every SMST key of the session (after it settled or failed for good); fenced."""
        self.forget(sid)
        fence_key, token = self._fence_args()
        keys = [self.nodes_key(sid), self.live_root_key(sid), self.root_key(sid)]
        try:
            await self._fenced_delete(keys=[fence_key, *keys, self.stats_key(sid)], args=[token])
        except ResponseError as err:
            _raise_fenced(err)
            raise


def _raise_fenced(err: ResponseError) -> None:
    if "FENCED" in str(err):
        raise LeaseLostError(str(err)) from err


__all__ = [
    "EMPTY_ROOT",
    "RedisSMSTStore",
    "SMSTCommitConflictError",
    "SMSTNotSealedError",
    "SMSTSealedError",
]
