"""Reading a trie: its store, lazy loading of an imported root, ``get``, ``commit`` and closest
proofs. :class:`~relayminer.smst.trie.SparseMerkleSumTrie` adds the mutations."""

from __future__ import annotations

from typing import Self

from relayminer.smst import shape
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
    SMSTNodeCorruptError,
    SMSTNodeMissingError,
    digest_count,
    digest_sum,
    parse_node,
)
from relayminer.smst.proof import ClosestProof, MerkleProof
from relayminer.smst.shape import (
    SMSTUnsupportedShapeError,
    _Child,
    _digest,
    _expand,
    _Ext,
    _ext_mismatch,
    _flush,
    _Inner,
    _key_arg,
    _Lazy,
    _leaf_path,
    _leaf_payload,
    _Loaded,
    _preimage,
    _unmark,
)
from relayminer.validate import as_bytes

__all__ = ["TrieReader"]


class TrieReader:
    """A trie on a :class:`MapStore`, read and committed (see :mod:`relayminer.smst.trie`)."""

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
    def import_root(cls, store: MapStore, root: bytes) -> Self:
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
        path = shape.sha256(_key_arg(key)).digest()
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
