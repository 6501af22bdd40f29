"""The trie's in-memory nodes and the pure steps that build, hash and reshape them.

Shared by :class:`~relayminer.smst.reader.TrieReader` (loading, reading, proofs, commits) and
:class:`~relayminer.smst.trie.SparseMerkleSumTrie` (updates and deletes); see
:mod:`relayminer.smst.trie` for the design.
"""

from __future__ import annotations

import hashlib
import struct
from typing import ClassVar, final

from relayminer.smst.nodes import (
    MAX_DEPTH,
    PLACEHOLDER,
    SMSTError,
    SMSTInvalidArgumentError,
    encode_extension,
    extension_digest,
)
from relayminer.validate import as_bytes

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
    """``prove_closest`` reached a post-delete shape on which Go smt panics.

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
