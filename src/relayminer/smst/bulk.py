"""Bulk build of a Sparse Merkle Sum Trie from a whole leaf set: sort by path, hash bottom-up.

Incremental inserts re-hash the path of every leaf they touch (lazily, once per commit); a tree
known in full at claim time can instead be built in one pass that hashes each node exactly once:
``n`` leaves, ``n - 1`` inner nodes and the levels of the extension chains (about ``0.44 n``
for random paths), and nothing else. The root is byte-identical to the incremental trie's, since
it only depends on the leaf set (docs/leaf-journal.md, "Bulk build").

How: the leaves are sorted by path ``sha256(key)``. Two neighbours ``a < b`` in that order
meet at the inner node whose split bit is the first bit where their paths differ; that inner
node's left subtree ends with ``a`` and its right subtree starts with ``b``. So a single left to
right sweep with a stack of pending inner nodes (their left child done, their right child being
built; split bits strictly increasing up the stack) closes every inner node as soon as a later
neighbour meets higher up, exactly as a Cartesian tree is built from its array. A child whose
own split lies deeper than one level below its parent sits under a chain of single-child inner
nodes, which the Go library stores as one extension node; its digest is
:func:`~relayminer.smst.nodes.extension_digest`.

Node store: with ``store`` given, every node is written as an incremental build would leave it
after ``commit()`` (key = digest, value = preimage). The one thing insertion order decides is
the ``path`` field of an extension's preimage (the bits below the extension, which do not change
any digest). This module always produces what inserting the leaves **in ascending path order**
produces: an extension carries the path of the second-smallest leaf below it (the leaf whose
insertion created it). The bytes are thus a function of the leaf set alone: a tree rebuilt after
a restart gives the same proofs, byte for byte.

Duplicate keys: a key given twice with the same value and weight counts once (a redelivered
relay); a key given twice with a different value or weight raises
:class:`SMSTDuplicateKeyError`, because which of the two the claim should contain is a caller
bug, not something to guess.

>>> import hashlib
>>> leaves = [(hashlib.sha256(b"a").digest(), b"value-a", 1)]
>>> bulk_root(leaves).hex()[:16]
'61200462f2836c69'
>>> trie = bulk_build(leaves)
>>> trie.root() == bulk_root(leaves), trie.count()
(True, 1)
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

from relayminer.smst.mapstore import MapStore, MemoryMapStore, apply_changes
from relayminer.smst.nodes import (
    PATH_SIZE,
    PLACEHOLDER,
    SMSTInvalidArgumentError,
    encode_extension,
    extension_digest,
)
from relayminer.smst.trie import SparseMerkleSumTrie

__all__ = ["SMSTDuplicateKeyError", "bulk_build", "bulk_root"]

Leaf = tuple[bytes, bytes, int]

_LEAF = 256  # "split bit" of a leaf: no chain of inner nodes can sit above it
_M64 = 0xFFFFFFFFFFFFFFFF
_UINT64_LIMIT = 1 << 64
_pack_qq = struct.Struct(">QQ").pack
_unpack_qq = struct.Struct(">QQ").unpack_from


class SMSTDuplicateKeyError(SMSTInvalidArgumentError):
    """One key given twice with different values or weights."""

    def __init__(self, key: bytes) -> None:
        super().__init__(f"key {key.hex()} given twice with different value or weight")
        self.key = key


def bulk_root(leaves: Iterable[Leaf]) -> bytes:
    """The 48-byte root of the trie holding ``leaves`` (``(key, value, weight)`` triples, key a
    32-byte relay hash, weight a uint64), without building a node store."""
    return _build(_sorted_entries(leaves), None, None)


def bulk_build(leaves: Iterable[Leaf], store: MapStore | None = None) -> SparseMerkleSumTrie:
    """The trie of ``leaves``, with every node written to ``store`` (a new
    :class:`MemoryMapStore` when None) as an ascending-path-order incremental build would have
    left it after ``commit()``. The trie is imported at the root, so nodes are read from the
    store as ``prove_closest`` (or a further ``update``) needs them."""
    if store is None:
        store = MemoryMapStore()
    elif not isinstance(store, MapStore):
        raise TypeError(f"store must be a MapStore, got {type(store).__name__}")
    keys: list[bytes] = []
    values: list[bytes] = []
    root = _build(_sorted_entries(leaves), keys, values)
    apply_changes(store, (), keys, values)
    return SparseMerkleSumTrie.import_root(store, root)


def _sorted_entries(leaves: Iterable[Leaf]) -> list[tuple[bytes, bytes, int, bytes]]:
    """``(path, value, weight, key)`` per leaf, validated, in ascending path order."""
    sha256 = hashlib.sha256
    entries = []
    for key, value, weight in leaves:
        if type(key) is not bytes or len(key) != PATH_SIZE:
            if not isinstance(key, bytes | bytearray | memoryview):
                raise TypeError(f"key must be bytes, got {type(key).__name__}")
            key = bytes(key)
            if len(key) != PATH_SIZE:
                raise SMSTInvalidArgumentError(
                    f"key must be a 32-byte relay hash, got {len(key)} bytes"
                )
        if type(value) is not bytes:
            if not isinstance(value, bytes | bytearray | memoryview):
                raise TypeError(f"value must be bytes, got {type(value).__name__}")
            value = bytes(value)
        if type(weight) is not int or not 0 <= weight < _UINT64_LIMIT:
            if isinstance(weight, bool) or not isinstance(weight, int):
                raise TypeError(f"weight must be an int, got {type(weight).__name__}")
            if not 0 <= weight < _UINT64_LIMIT:
                raise SMSTInvalidArgumentError(f"weight must be in [0, 2**64), got {weight}")
            weight = int(weight)
        entries.append((sha256(key).digest(), value, weight, key))
    entries.sort()
    return entries


def _build(
    entries: list[tuple[bytes, bytes, int, bytes]],
    keys: list[bytes] | None,
    values: list[bytes] | None,
) -> bytes:
    """The root digest of the sorted ``entries``; with ``keys``/``values`` given, every node's
    digest and preimage is appended to them (children before parents).

    One sweep, one hash per node. ``cur`` is the subtree just completed (digest, split bit,
    smallest and second-smallest leaf path); the stack holds the inner nodes still waiting for
    their right child: split bit, left child digest as seen one level below the split, and the
    left subtree's smallest and second-smallest paths. Kept as parallel lists and locals: this
    is the hot loop of a claim.
    """
    if not entries:
        return PLACEHOLDER
    sha256 = hashlib.sha256
    record = keys is not None
    st_bit: list[int] = []
    st_left: list[bytes] = []
    st_first: list[bytes] = []
    st_second: list[bytes | None] = []

    path, value, weight, _ = entries[0]
    tail = _pack_qq(weight, 1)
    pre = b"\x00" + path + value + tail
    cur = sha256(pre).digest() + tail
    if record:
        keys.append(cur)  # type: ignore[union-attr]
        values.append(pre)  # type: ignore[union-attr]
    cur_bit, cur_first, cur_second = _LEAF, path, None
    prev_int = int.from_bytes(path, "big")
    prev_value, prev_weight = value, weight

    for path, value, weight, key in entries[1:]:
        path_int = int.from_bytes(path, "big")
        diff = prev_int ^ path_int
        if diff == 0:  # the same key again (sorted next to itself)
            if value != prev_value or weight != prev_weight:
                raise SMSTDuplicateKeyError(key)
            continue
        split = 256 - diff.bit_length()
        prev_int, prev_value, prev_weight = path_int, value, weight
        # Close the pending inner nodes below the split: each gets ``cur`` as its right child.
        while st_bit and st_bit[-1] > split:
            b = st_bit.pop()
            left = st_left.pop()
            if cur_bit != _LEAF and cur_bit > b + 1:
                cur = _chain(b + 1, cur_bit, cur_first, cur_second, cur, keys, values)
            ls, lc = _unpack_qq(left, 32)
            rs, rc = _unpack_qq(cur, 32)
            pre = b"\x01" + left + cur + _pack_qq((ls + rs) & _M64, lc + rc)
            cur = sha256(pre).digest() + pre[97:]
            if record:
                keys.append(cur)  # type: ignore[union-attr]
                values.append(pre)  # type: ignore[union-attr]
            left_second = st_second.pop()
            cur_second = cur_first if left_second is None else left_second
            cur_first = st_first.pop()
            cur_bit = b
        # ``cur`` becomes the left child of a new inner node at the split.
        if cur_bit != _LEAF and cur_bit > split + 1:
            cur = _chain(split + 1, cur_bit, cur_first, cur_second, cur, keys, values)
        st_bit.append(split)
        st_left.append(cur)
        st_first.append(cur_first)
        st_second.append(cur_second)
        tail = _pack_qq(weight, 1)
        pre = b"\x00" + path + value + tail
        cur = sha256(pre).digest() + tail
        if record:
            keys.append(cur)  # type: ignore[union-attr]
            values.append(pre)  # type: ignore[union-attr]
        cur_bit, cur_first, cur_second = _LEAF, path, None

    while st_bit:
        b = st_bit.pop()
        left = st_left.pop()
        if cur_bit != _LEAF and cur_bit > b + 1:
            cur = _chain(b + 1, cur_bit, cur_first, cur_second, cur, keys, values)
        ls, lc = _unpack_qq(left, 32)
        rs, rc = _unpack_qq(cur, 32)
        pre = b"\x01" + left + cur + _pack_qq((ls + rs) & _M64, lc + rc)
        cur = sha256(pre).digest() + pre[97:]
        if record:
            keys.append(cur)  # type: ignore[union-attr]
            values.append(pre)  # type: ignore[union-attr]
        left_second = st_second.pop()
        cur_second = cur_first if left_second is None else left_second
        cur_first = st_first.pop()
        cur_bit = b
    if cur_bit != _LEAF and cur_bit > 0:
        cur = _chain(0, cur_bit, cur_first, cur_second, cur, keys, values)
    return cur


def _chain(
    start: int,
    end: int,
    first: bytes,
    second: bytes | None,
    child: bytes,
    keys: list[bytes] | None,
    values: list[bytes] | None,
) -> bytes:
    """Digest of the inner node ``child`` (split at ``end``) seen from depth ``start``: the
    extension ``[start, end)`` above it. Every leaf below shares bits ``[0, end)``, so any of
    their paths gives the chain's sides; the stored extension carries the second-smallest."""
    digest = extension_digest(start, end, first, child)
    if keys is not None:
        assert values is not None and second is not None  # an inner node has two leaves
        keys.append(digest)
        values.append(encode_extension(start, end, second, child))
    return digest
