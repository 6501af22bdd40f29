"""Sparse Merkle Sum Trie, byte-exact with Go ``pokt-network/smt`` v0.14.1 (docs/smst.md).

The trie keeps the compressed shape of the Go library (leaf, inner and extension nodes) and
mutates it with the exact algorithms of §6, so that the node store (digest -> preimage) holds
the same bytes as a Go miner's, extension ``path`` fields included. Inner and extension digests
are computed lazily: a mutation only marks the path it walked as dirty, and ``root()`` or
``commit()`` hash each dirty node once.

The code is split by concern: :mod:`~relayminer.smst.shape` (in-memory nodes, hashing),
:mod:`~relayminer.smst.reader` (store, lazy loading, ``get``, ``commit``, closest proofs) and
this module (``update`` and ``delete``).

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

from relayminer.smst import shape
from relayminer.smst.nodes import (
    SMSTError,
    SMSTInvalidArgumentError,
    SMSTKeyNotFoundError,
    SMSTNodeCorruptError,
    SMSTNodeMissingError,
    calc_root,
)
from relayminer.smst.reader import TrieReader
from relayminer.smst.shape import (
    _LOW,
    _QQ,
    UINT64_LIMIT,
    SMSTUnsupportedShapeError,
    _Child,
    _Ext,
    _ext_mismatch,
    _Inner,
    _key_arg,
    _Lazy,
    _leaf_path,
    _Loaded,
    _Node,
    _set_dirty,
    _split_extension,
    _weight_arg,
)
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


class SparseMerkleSumTrie(TrieReader):
    """The Pocket Network sparse Merkle sum trie (SHA-256, no value hasher).

    ``SparseMerkleSumTrie(store)`` starts empty on ``store`` (a :class:`MemoryMapStore` when
    None); :meth:`import_root` resumes a committed trie from ``(store, root)``. Keys are bytes
    of any length (the miner's are 32-byte relay hashes); the leaf path is ``sha256(key)``.
    Weights are uint64; sums and counts wrap mod 2**64 like Go.
    """

    __slots__ = ()

    # --- mutation --------------------------------------------------------------------------

    def update(self, key: bytes, value: bytes, weight: int) -> None:
        """Insert or replace the leaf of ``key`` (Go ``Update``, §6.1)."""
        if type(key) is not bytes:
            key = _key_arg(key)
        if type(value) is not bytes:
            value = as_bytes("value", value)
        if type(weight) is not int or not 0 <= weight < UINT64_LIMIT:
            weight = _weight_arg(weight)
        path = shape.sha256(key).digest()
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
        leaf = (pre, shape.sha256(pre).digest() + tail)
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
        path = shape.sha256(key).digest()
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
