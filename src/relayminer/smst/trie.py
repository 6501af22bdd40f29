"""Sparse Merkle Sum Trie, byte-exact with Go ``pokt-network/smt`` v0.14.1 (spec/smst.md).

The trie keeps the compressed shape of the Go library (leaf, inner and extension nodes) and
mutates it with the exact algorithms of §6, so that the node store (digest -> preimage) holds
the same bytes as a Go miner's, extension ``path`` fields included. Inner and extension digests
are computed lazily: a mutation only marks the path it walked as dirty, and ``root()`` or
``commit()`` hash each dirty node once.

>>> import hashlib
>>> trie = SparseMerkleSumTrie()
>>> trie.update(hashlib.sha256(b"a").digest(), b"value-a", 1)
>>> trie.root().hex()[:16], trie.sum(), trie.count()
('61200462f2836c69', 1, 1)
>>> trie.commit()
>>> again = SparseMerkleSumTrie.import_root(trie.store, trie.root())
>>> again.get(hashlib.sha256(b"a").digest())
(b'value-a', 1)

Persistence (§7): the store is read with ``get`` when a node of an imported trie is first
needed, and written only by ``commit()``: first ``delete`` of every orphan (a stored node that
was replaced or modified), then ``set`` of every node created or modified since the last
commit, children before parents. After ``commit()`` the store holds exactly one entry per node
of the current structure.

Failure guarantee: if an operation raises :class:`SMSTNodeMissingError` or
:class:`SMSTNodeCorruptError` (a node could not be loaded), nothing was mutated. Every node an
operation needs is loaded before the first change; the only lasting effect is that nodes loaded
so far replace their lazy references, which does not change the trie's meaning. Root, count,
sum, pending orphans and pending writes are as before, so the same call can simply be retried.
If ``commit()`` fails inside the store, the trie keeps its pending orphans and writes and a
later ``commit()`` redoes them all.
"""

from __future__ import annotations

import hashlib
import struct
from typing import ClassVar, final

from relayminer.smst.mapstore import MapStore, MemoryMapStore, apply_changes
from relayminer.smst.nodes import (
    DIGEST_SIZE,
    MAX_DEPTH,
    PATH_SIZE,
    PLACEHOLDER,
    ParsedInner,
    ParsedLeaf,
    SMSTError,
    SMSTInvalidArgumentError,
    SMSTKeyNotFoundError,
    SMSTNodeCorruptError,
    SMSTNodeMissingError,
    calc_root,
    digest_count,
    digest_sum,
    encode_extension,
    extension_digest,
    parse_node,
)
from relayminer.smst.proof import ClosestProof, MerkleProof
from relayminer.validate import as_bytes

__all__ = [
    "SMSTError",
    "SMSTInvalidArgumentError",
    "SMSTKeyNotFoundError",
    "SMSTNodeCorruptError",
    "SMSTNodeMissingError",
    "SMSTUnsupportedShapeError",
    "SparseMerkleSumTrie",
    "calc_root",
]

UINT64_LIMIT = 1 << 64
_QQ = struct.Struct(">QQ")
_unpack_qq = _QQ.unpack_from
_pack_inner = struct.Struct(">c48s48sQQ").pack
_M64 = 0xFFFFFFFFFFFFFFFF
# _LOW[k] has the k least significant bits set: bits [s, 256) of a path int are _LOW[256 - s].
_LOW = tuple((1 << k) - 1 for k in range(MAX_DEPTH + 1))

# Looked up at call time (never bound at import), so a benchmark can count the hashing work.
sha256 = hashlib.sha256


class SMSTUnsupportedShapeError(SMSTError):
    """``prove_closest`` reached a post-delete shape on which Go panics (spec §10).

    The relay flow never deletes, so this cannot happen on a miner's trees.
    """


# --- in-memory nodes ------------------------------------------------------------------------
# A leaf is the immutable pair (preimage, digest), preimage = 0x00 || path || payload (the
# same bytes object the store gets). Tuples of bytes are not tracked by the garbage collector,
# which keeps full collections cheap on big tries. Leaves not yet committed are remembered by
# the trie (``_new_leaves``) rather than flagged.
#
# Inner and extension nodes are mutable. ``digest`` caches the 48-byte digest (None while
# dirty); ``persisted`` says the node is in the store under ``digest`` (it becomes an orphan
# to delete when the node is modified). ``ld``/``rd`` (inner) and ``cd`` (extension) cache the
# digest of a child that is committed and unchanged, so a commit reads it without touching
# the child: on big tries, memory latency costs more than the hashing. A walk that goes down
# into a child clears that child's cache, as does every assignment of a new child.

_Leaf = tuple[bytes, bytes]


@final
class _Inner:
    __slots__ = ("digest", "ld", "left", "persisted", "rd", "right")

    def __init__(
        self,
        left: _Child,
        right: _Child,
        digest: bytes | None = None,
        persisted: bool = False,
        ld: bytes | None = None,
        rd: bytes | None = None,
    ) -> None:
        self.left = left
        self.right = right
        self.digest = digest
        self.persisted = persisted
        self.ld = ld
        self.rd = rd


@final
class _Ext:
    __slots__ = ("cd", "child", "digest", "end", "path", "persisted", "start")

    def __init__(
        self,
        start: int,
        end: int,
        path: bytes,
        child: _Child,
        digest: bytes | None = None,
        persisted: bool = False,
        cd: bytes | None = None,
    ) -> None:
        self.start = start
        self.end = end
        self.path = path
        self.child = child
        self.digest = digest
        self.persisted = persisted
        self.cd = cd


@final
class _Lazy:
    """A stored node not loaded yet (Go ``lazyNode``); the placeholder digest means empty."""

    __slots__ = ("digest",)
    persisted: ClassVar[bool] = True

    def __init__(self, digest: bytes) -> None:
        self.digest = digest


_Node = _Leaf | _Inner | _Ext | _Lazy
_Child = _Node | None
_Loaded = _Leaf | _Inner | _Ext | None


def _leaf_path(leaf: _Leaf) -> bytes:
    return leaf[0][1:33]


def _leaf_payload(leaf: _Leaf) -> bytes:
    return leaf[0][33:]


# --- arguments ------------------------------------------------------------------------------


def _key_arg(key: object) -> bytes:
    """A key of any length (Go smt hashes it to the 32-byte path; the miner's keys are relay
    hashes, a rule its relay parser enforces, not the trie)."""
    return as_bytes("key", key)


def _weight_arg(weight: object) -> int:
    if type(weight) is not int:
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise TypeError(f"weight must be an int, got {type(weight).__name__}")
        weight = int(weight)
    if not 0 <= weight < UINT64_LIMIT:
        raise SMSTInvalidArgumentError(f"weight must be in [0, 2**64), got {weight}")
    return weight


# --- hashing --------------------------------------------------------------------------------


def _digest(node: _Child) -> bytes:
    """Digest of a node, hashing (and caching) only what is dirty below it."""
    if node is None:
        return PLACEHOLDER
    if isinstance(node, tuple):
        return node[1]
    d = node.digest
    if d is None:
        assert not isinstance(node, _Lazy)
        d = _compute(node)
    return d


def _compute(node: _Inner | _Ext) -> bytes:
    """Hash a dirty node (for ``root()``; a commit hashes in :func:`_flush`)."""
    if type(node) is _Inner:
        pre = _inner_preimage(node.ld or _digest(node.left), node.rd or _digest(node.right))
        d = sha256(pre).digest() + pre[97:]
    else:
        assert isinstance(node, _Ext)
        d = extension_digest(node.start, node.end, node.path, node.cd or _digest(node.child))
    node.digest = d
    return d


def _inner_preimage(ld: bytes, rd: bytes) -> bytes:
    ls, lc = _unpack_qq(ld, 32)
    rs, rc = _unpack_qq(rd, 32)
    return _pack_inner(b"\x01", ld, rd, (ls + rs) & _M64, (lc + rc) & _M64)


def _preimage(node: _Leaf | _Inner | _Ext) -> bytes:
    """Stored bytes of a node."""
    if isinstance(node, tuple):
        return node[0]
    if type(node) is _Inner:
        return _inner_preimage(node.ld or _digest(node.left), node.rd or _digest(node.right))
    assert isinstance(node, _Ext)
    return encode_extension(node.start, node.end, node.path, node.cd or _digest(node.child))


def _flush(node: _Inner | _Ext, keys: list[bytes], values: list[bytes]) -> bytes:
    """Collect digest (in ``keys``) and preimage (in ``values``) of ``node`` and of its
    unpersisted inner/extension descendants, children first, hashing only nodes without a
    cached digest; mark them persisted and cache their digests in their parents. Returns the
    digest of ``node``.

    Unrolled for speed (this is most of the work of a commit). Two lists of bytes rather than
    a list of pairs: no tuple per node, which keeps the garbage collector quiet.
    """
    if type(node) is _Inner:
        ld = node.ld
        if ld is None:
            left = node.left
            if left is None:
                ld = PLACEHOLDER
            elif type(left) is tuple:
                ld = left[1]
            elif left.persisted:  # type: ignore[union-attr]
                ld = left.digest  # type: ignore[union-attr]
            else:
                ld = _flush(left, keys, values)  # type: ignore[arg-type]
            node.ld = ld
        rd = node.rd
        if rd is None:
            right = node.right
            if right is None:
                rd = PLACEHOLDER
            elif type(right) is tuple:
                rd = right[1]
            elif right.persisted:  # type: ignore[union-attr]
                rd = right.digest  # type: ignore[union-attr]
            else:
                rd = _flush(right, keys, values)  # type: ignore[arg-type]
            node.rd = rd
        assert ld is not None and rd is not None
        ls, lc = _unpack_qq(ld, 32)
        rs, rc = _unpack_qq(rd, 32)
        pre = _pack_inner(b"\x01", ld, rd, (ls + rs) & _M64, (lc + rc) & _M64)
        d = node.digest
        if d is None:
            d = node.digest = sha256(pre).digest() + pre[97:]
    else:
        assert isinstance(node, _Ext)
        cd = node.cd
        if cd is None:
            child = node.child
            if isinstance(child, _Inner | _Ext) and not child.persisted:
                cd = _flush(child, keys, values)
            else:
                cd = _digest(child)
            node.cd = cd
        pre = encode_extension(node.start, node.end, node.path, cd)
        d = node.digest
        if d is None:
            d = node.digest = extension_digest(node.start, node.end, node.path, cd)
    keys.append(d)
    values.append(pre)
    node.persisted = True
    return d


def _unmark(root: _Child, digests: set[bytes]) -> None:
    """Undo the persisted marks :func:`_flush` set on the nodes whose digests are ``digests``
    (they form a subtree at the root, like every set of unpersisted nodes)."""
    todo: list[_Child] = [root]
    while todo:
        node = todo.pop()
        if isinstance(node, _Inner | _Ext) and node.digest in digests:
            node.persisted = False
            if isinstance(node, _Inner):
                node.ld = node.rd = None  # their children may be unmarked too
                todo += (node.left, node.right)
            else:
                node.cd = None
                todo.append(node.child)


def _set_dirty(node: _Inner | _Ext, orphans: list[bytes]) -> None:
    """Go ``addOrphan`` + ``setDirty``: forget the digest, remember a stored one as orphan."""
    if node.persisted:
        assert node.digest is not None
        orphans.append(node.digest)
        node.persisted = False
    node.digest = None


def _ext_mismatch(ext: _Ext, path_int: int) -> int:
    """First bit in ``[ext.start, ext.end)`` where ``path_int`` leaves ``ext.path``, else -1."""
    mask = _LOW[256 - ext.start] ^ _LOW[256 - ext.end]
    diff = (int.from_bytes(ext.path, "big") ^ path_int) & mask
    return -1 if diff == 0 else 256 - diff.bit_length()


def _split_extension(ext: _Ext, i: int, leaf: _Leaf, orphans: list[bytes]) -> _Node:
    """Insert ``leaf`` below an extension its path leaves at bit ``i`` (Go ``split``, §6.1)."""
    _set_dirty(ext, orphans)
    start, end = ext.start, ext.end
    branch = _Inner(None, None)
    head: _Node
    tail: _Child
    if i == start:  # shorten the extension at the front (or drop it)
        ext.start = start + 1
        tail = ext.child if ext.start == end else ext
        head = branch
    else:  # cut the extension at i; the rest below the branch keeps the same path
        old_child = ext.child
        ext.child = branch
        ext.cd = None
        tail = old_child if i == end - 1 else _Ext(i + 1, end, ext.path, old_child)
        ext.end = i
        head = ext
    if (ext.path[i >> 3] >> (7 - (i & 7))) & 1:
        branch.right = tail
        branch.left = leaf
    else:
        branch.left = tail
        branch.right = leaf
    return head


def _expand(ext: _Ext) -> _Inner:
    """The chain of virtual inner nodes an extension stands for (Go ``expand``)."""
    last: _Child = ext.child
    for i in range(ext.end - 1, ext.start - 1, -1):
        bit_i = (ext.path[i >> 3] >> (7 - (i & 7))) & 1
        last = _Inner(None, last) if bit_i else _Inner(last, None)
    assert isinstance(last, _Inner)
    return last


# --- the trie -------------------------------------------------------------------------------


class SparseMerkleSumTrie:
    """The Pocket Network sparse Merkle sum trie (SHA-256, no value hasher).

    ``SparseMerkleSumTrie(store)`` starts empty on ``store`` (a :class:`MemoryMapStore` when
    None); :meth:`import_root` resumes a committed trie from ``(store, root)``. Keys are bytes
    of any length (the miner's are 32-byte relay hashes); the leaf path is ``sha256(key)``. Weights are uint64; sums and counts wrap
    mod 2**64 like Go.
    """

    __slots__ = ("_may_be_lazy", "_new_leaves", "_orphans", "_root", "_store")

    def __init__(self, store: MapStore | None = None) -> None:
        if store is None:
            store = MemoryMapStore()
        elif not isinstance(store, MapStore):
            raise TypeError(f"store must be a MapStore, got {type(store).__name__}")
        self._store: MapStore = store
        self._root: _Child = None
        self._orphans: list[bytes] = []  # digests to delete at the next commit
        self._new_leaves: dict[bytes, bytes] = {}  # uncommitted leaves: digest -> preimage
        self._may_be_lazy = False  # True once imported: nodes may still have to be loaded

    @classmethod
    def import_root(cls, store: MapStore, root: bytes) -> SparseMerkleSumTrie:
        """Resume the committed trie whose 48-byte root digest is ``root`` (Go
        ``ImportSparseMerkleSumTrie``).

        Nothing is read now: each node is fetched from ``store`` by digest when first visited,
        and the operation that needs a node the store does not have raises
        :class:`SMSTNodeMissingError` (see the module's failure guarantee). The
        48-zero-byte root is the empty trie.
        """
        root = as_bytes("root", root)
        if len(root) != DIGEST_SIZE:
            raise SMSTInvalidArgumentError(f"root must be {DIGEST_SIZE} bytes, got {len(root)}")
        trie = cls(store)
        if root != PLACEHOLDER:
            trie._root = _Lazy(root)
            trie._may_be_lazy = True
        return trie

    # --- reading ---------------------------------------------------------------------------

    @property
    def store(self) -> MapStore:
        """The node store (written only by :meth:`commit`)."""
        return self._store

    def root(self) -> bytes:
        """The 48-byte root digest ``hash || BE64(sum) || BE64(count)`` (§4)."""
        return _digest(self._root)

    def sum(self) -> int:
        """Total weight of all leaves, mod 2**64."""
        return digest_sum(self.root())

    def count(self) -> int:
        """Number of leaves."""
        return digest_count(self.root())

    @property
    def has_uncommitted_changes(self) -> bool:
        """True when :meth:`commit` has orphans to delete or nodes to write."""
        root = self._root
        if self._orphans or self._new_leaves:
            return True
        return isinstance(root, _Inner | _Ext) and not root.persisted

    def get(self, key: bytes) -> tuple[bytes, int] | None:
        """``(value, weight)`` stored under ``key``, or None (Go ``Get``)."""
        path = sha256(_key_arg(key)).digest()
        path_int = int.from_bytes(path, "big")
        node = self._root
        if type(node) is _Lazy:
            node = self._root = self._load(node.digest)
        depth = 0
        while True:
            if type(node) is _Inner:
                if (path_int >> (255 - depth)) & 1:
                    child = node.right
                    if type(child) is _Lazy:
                        child = node.right = self._load(child.digest)
                else:
                    child = node.left
                    if type(child) is _Lazy:
                        child = node.left = self._load(child.digest)
                node = child
                depth += 1
            elif type(node) is _Ext:
                self._check_ext_depth(node, depth)
                if _ext_mismatch(node, path_int) >= 0:
                    return None
                depth = node.end
                node = self._ext_child(node)
            elif type(node) is tuple:
                if _leaf_path(node) != path:
                    return None
                payload = _leaf_payload(node)
                return payload[:-16], int.from_bytes(payload[-16:-8], "big")
            else:
                return None

    # --- mutation --------------------------------------------------------------------------

    def update(self, key: bytes, value: bytes, weight: int) -> None:
        """Insert or replace the leaf of ``key`` (Go ``Update``, §6.1)."""
        if type(key) is not bytes:
            key = _key_arg(key)
        if type(value) is not bytes:
            value = as_bytes("value", value)
        if type(weight) is not int or not 0 <= weight < UINT64_LIMIT:
            weight = _weight_arg(weight)
        path = sha256(key).digest()
        path_int = int.from_bytes(path, "big")

        # Phase 1: walk down to the node the new leaf replaces or splits, loading lazy nodes
        # on the way. Nothing is mutated before the walk is complete.
        orphans = self._orphans
        stack: list[_Inner | _Ext] = []
        owner: _Inner | _Ext | None = None
        node = self._root
        depth = 0
        split = -1
        if self._may_be_lazy:
            node, depth, split = self._walk_loading(path_int, stack)
            if stack:
                owner = stack[-1]
            # Mark the walked path dirty, bottom-up. A node without a digest has only such
            # ancestors (digests are computed bottom-up), so the walk stops at the first one.
            for n in reversed(stack):
                d = n.digest
                if d is None:
                    break
                if n.persisted:
                    orphans.append(d)
                    n.persisted = False
                n.digest = None
        else:
            # Hot path: a trie that was never imported has no lazy references, so the walk
            # cannot fail and marks the path dirty as it goes (Go addOrphan + setDirty).
            while True:
                if type(node) is _Inner:
                    owner = node
                    if node.digest is not None:
                        if node.persisted:
                            orphans.append(node.digest)
                            node.persisted = False
                        node.digest = None
                    if (path_int >> (255 - depth)) & 1:
                        node.rd = None
                        node = node.right
                    else:
                        node.ld = None
                        node = node.left
                    depth += 1
                elif type(node) is _Ext:
                    split = _ext_mismatch(node, path_int)
                    if split >= 0:
                        break
                    owner = node
                    if node.digest is not None:
                        if node.persisted:
                            orphans.append(node.digest)
                            node.persisted = False
                        node.digest = None
                    node.cd = None
                    depth = node.end
                    node = node.child
                else:
                    break

        # Phase 2: build the replacement of the node reached (cannot fail).
        new_leaves = self._new_leaves
        tail = _QQ.pack(weight, 1)
        pre = b"\x00" + path + value + tail
        leaf = (pre, sha256(pre).digest() + tail)
        new: _Node
        if node is None:
            new = leaf
        elif type(node) is tuple:
            diff = (int.from_bytes(node[0][1:33], "big") ^ path_int) & _LOW[256 - depth]
            if diff == 0:  # same key: the leaf is replaced
                if new_leaves.pop(node[1], None) is None:
                    orphans.append(node[1])
                new = leaf
            else:
                p = 256 - diff.bit_length()
                bit_p = (path_int >> (255 - p)) & 1
                branch = _Inner(node, leaf) if bit_p else _Inner(leaf, node)
                new = _Ext(depth, p, path, branch) if depth < p else branch
        else:
            assert isinstance(node, _Ext)
            new = _split_extension(node, split, leaf, orphans)
        new_leaves[leaf[1]] = pre

        if owner is None:
            self._root = new
        elif type(owner) is _Ext:
            owner.child = new
            owner.cd = None
        elif (path_int >> (256 - depth)) & 1:  # owner is the inner node at depth - 1
            owner.right = new
            owner.rd = None
        else:
            owner.left = new
            owner.ld = None

    def _walk_loading(self, path_int: int, stack: list[_Inner | _Ext]) -> tuple[_Loaded, int, int]:
        """The walk of :meth:`update` on a trie that may hold lazy references: returns the
        node reached, its depth and the split bit inside it (-1 unless an extension)."""
        node = self._root
        if type(node) is _Lazy:
            node = self._root = self._load(node.digest)
        depth = 0
        while True:
            if type(node) is _Inner:
                stack.append(node)
                if (path_int >> (255 - depth)) & 1:
                    node.rd = None  # forgetting a cached digest changes nothing
                    child = node.right
                    if type(child) is _Lazy:
                        child = node.right = self._load(child.digest)
                else:
                    node.ld = None
                    child = node.left
                    if type(child) is _Lazy:
                        child = node.left = self._load(child.digest)
                node = child
                depth += 1
            elif type(node) is _Ext:
                self._check_ext_depth(node, depth)
                split = _ext_mismatch(node, path_int)
                if split >= 0:
                    return node, depth, split
                node.cd = None
                stack.append(node)
                depth = node.end
                node = self._ext_child(node)
            else:
                assert not isinstance(node, _Lazy)
                return node, depth, -1

    def delete(self, key: bytes) -> None:
        """Remove the leaf of ``key`` (Go ``Delete``, §6.3).

        Raises :class:`SMSTKeyNotFoundError` (a ``KeyError``) when the key is absent; the trie
        is then unchanged.
        """
        key = _key_arg(key)
        path = sha256(key).digest()
        path_int = int.from_bytes(path, "big")
        # Phase 1: find the leaf and load every node phase 2 looks at (the path and the
        # siblings along it, as Go does).
        stack: list[tuple[_Inner | _Ext, int]] = []
        node = self._root
        if type(node) is _Lazy:
            node = self._root = self._load(node.digest)
        depth = 0
        while True:
            if type(node) is _Inner:
                if (path_int >> (255 - depth)) & 1:
                    stack.append((node, 1))
                    child = node.right
                    if type(child) is _Lazy:
                        child = node.right = self._load(child.digest)
                else:
                    stack.append((node, 0))
                    child = node.left
                    if type(child) is _Lazy:
                        child = node.left = self._load(child.digest)
                node = child
                depth += 1
            elif type(node) is _Ext:
                self._check_ext_depth(node, depth)
                if _ext_mismatch(node, path_int) >= 0:
                    raise SMSTKeyNotFoundError(key)
                stack.append((node, 2))
                depth = node.end
                node = self._ext_child(node)
            elif type(node) is tuple and _leaf_path(node) == path:
                break
            else:
                raise SMSTKeyNotFoundError(key)
        for n, side in stack:
            if side == 0:
                assert isinstance(n, _Inner)
                if type(n.right) is _Lazy:
                    n.right = self._load(n.right.digest)
            elif side == 1:
                assert isinstance(n, _Inner)
                if type(n.left) is _Lazy:
                    n.left = self._load(n.left.digest)

        # Phase 2: unwind exactly like the recursive Go code.
        orphans = self._orphans
        if self._new_leaves.pop(node[1], None) is None:
            orphans.append(node[1])
        c: _Child = None
        for n, side in reversed(stack):
            result: _Child = n
            if side == 2:
                assert isinstance(n, _Ext)
                _set_dirty(n, orphans)
                n.child = c
                n.cd = None
                if type(c) is tuple:  # the leaf moves up, the extension disappears
                    result = c
                elif type(c) is _Ext:  # join the two extensions
                    _set_dirty(c, orphans)
                    c.start = n.start
                    result = c
            else:
                assert isinstance(n, _Inner)
                _set_dirty(n, orphans)
                if side:
                    n.right = c
                    n.rd = None
                    sib = n.left
                else:
                    n.left = c
                    n.ld = None
                    sib = n.right
                if c is None and type(sib) is tuple:
                    result = sib
                elif c is None and type(sib) is _Ext:  # the extension absorbs this level
                    _set_dirty(sib, orphans)
                    sib.start -= 1
                    result = sib
                elif sib is None and type(c) is tuple:
                    result = c
                elif sib is None and type(c) is _Ext:
                    _set_dirty(c, orphans)
                    c.start -= 1
                    result = c
            c = result
        self._root = c

    # --- persistence -----------------------------------------------------------------------

    def commit(self) -> None:
        """Delete every orphan from the store, then write every new or modified node (§7.1)."""
        keys = list(self._new_leaves)
        values = list(self._new_leaves.values())
        root = self._root
        try:
            if isinstance(root, _Inner | _Ext) and not root.persisted:
                _flush(root, keys, values)
            apply_changes(self._store, self._orphans, keys, values)
        except BaseException:
            # The store did not take everything: keep all orphans and writes pending, so a
            # later commit() redoes them (deletes and sets are idempotent).
            _unmark(root, set(keys))
            raise
        self._orphans = []
        self._new_leaves = {}

    # --- proofs ----------------------------------------------------------------------------

    def prove_closest(self, path: bytes) -> ClosestProof:
        """Proof of the leaf closest to ``path`` (Go ``ProveClosest``, §8.2).

        ``path`` is 32 bytes (see :func:`relayminer.smst.proof.proof_path`). Raises
        :class:`SMSTUnsupportedShapeError` where Go panics (only on tries with deletions).
        """
        path = as_bytes("path", path)
        if len(path) != PATH_SIZE:
            raise SMSTInvalidArgumentError(
                f"invalid path does not match path hasher size: {len(path)} bytes, want 32"
            )
        if type(self._root) is _Lazy:  # cache the loaded root (equivalent for Go's walk)
            self._root = self._load(self._root.digest)
        work = int.from_bytes(path, "big")
        siblings: list[_Child] = []
        sib: _Child = None
        parent: _Child = None
        back = 0
        flipped: list[int] = []
        proof_depth = 0
        node: _Child = self._root
        depth = 0
        while depth < MAX_DEPTH:
            if node is not None:
                parent = node
            node = self._peek(node)
            if node is not None:
                back = 0
            else:  # step back to the parent and take the other side
                node = self._peek(parent)
                if siblings:
                    siblings.pop()
                depth -= back  # Go does not reset ``back`` here (§10)
                work ^= 1 << (255 - depth)
                flipped.append(depth)
            if type(node) is tuple:
                proof_depth = depth
                break
            if type(node) is _Ext:
                if depth != node.start:
                    raise SMSTUnsupportedShapeError(
                        f"depth {depth} != extension start {node.start} (Go panics here)"
                    )
                if _ext_mismatch(node, work) >= 0:
                    node = _expand(node)
                else:
                    length = node.end - node.start
                    siblings.extend([None] * length)
                    depth += length
                    back += length
                    node = self._ext_child(node)
            if not isinstance(node, _Inner):  # only for an empty trie
                proof_depth = depth
                break
            inner = node
            if (work >> (255 - depth)) & 1:
                node, sib = self._peek_child(inner, 1), inner.left
            else:
                node, sib = self._peek_child(inner, 0), inner.right
            siblings.append(sib)
            depth += 1
            back += 1

        if node is None:
            return ClosestProof(
                path=path,
                flipped_bits=tuple(flipped),
                depth=proof_depth,
                closest_path=PLACEHOLDER,
                closest_value_hash=None,
                closest_proof=MerkleProof(),
            )
        if type(node) is not tuple:
            raise SMSTError("expected leaf node")  # Go panics; unreachable for 256-bit paths
        sibling = self._peek(sib)
        return ClosestProof(
            path=path,
            flipped_bits=tuple(flipped),
            depth=proof_depth,
            closest_path=_leaf_path(node),
            closest_value_hash=_leaf_payload(node),
            closest_proof=MerkleProof(
                side_nodes=tuple(_digest(s) for s in reversed(siblings)),
                sibling_data=None if sibling is None else _preimage(sibling),
            ),
        )

    # --- loading ---------------------------------------------------------------------------

    def _load(self, digest: bytes) -> _Loaded:
        """Fetch and parse the node stored under ``digest`` (Go ``resolveLazy``)."""
        if digest == PLACEHOLDER:
            return None
        data = self._store.get(digest)
        if data is None:
            raise SMSTNodeMissingError(digest)
        if type(data) is not bytes:
            if not isinstance(data, bytes | bytearray | memoryview):
                raise SMSTNodeCorruptError(digest, f"store returned {type(data).__name__}")
            data = bytes(data)
        parsed = parse_node(data, digest)
        if isinstance(parsed, ParsedLeaf):
            return (data, digest)
        if isinstance(parsed, ParsedInner):
            # An empty side stays a lazy placeholder, as in Go (it matters to prove_closest).
            left, right = parsed.left, parsed.right
            return _Inner(_Lazy(left), _Lazy(right), digest, True, left, right)
        child = parsed.child
        return _Ext(parsed.start, parsed.end, parsed.path, _Lazy(child), digest, True, child)

    def _ext_child(self, ext: _Ext) -> _Child:
        child = ext.child
        if type(child) is _Lazy:
            loaded = self._load(child.digest)
            if type(loaded) is not _Inner:
                raise SMSTNodeCorruptError(child.digest, "child of an extension is not inner")
            ext.child = child = loaded
        return child

    @staticmethod
    def _check_ext_depth(ext: _Ext, depth: int) -> None:
        if ext.start != depth:
            raise SMSTNodeCorruptError(
                ext.digest, f"extension starts at bit {ext.start} but sits at depth {depth}"
            )

    def _peek(self, node: _Child) -> _Loaded:
        """Resolve without writing back (ProveClosest keeps lazy references)."""
        if isinstance(node, _Lazy):
            return self._load(node.digest)
        return node

    def _peek_child(self, inner: _Inner, side: int) -> _Child:
        """A child of ``inner``; a loaded non-empty node is cached in place (a lazy placeholder
        stays, because Go treats it as a non-nil node while walking)."""
        child = inner.right if side else inner.left
        if type(child) is _Lazy and child.digest != PLACEHOLDER:
            child = self._load(child.digest)
            if side:
                inner.right = child
            else:
                inner.left = child
        return child
