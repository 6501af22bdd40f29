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
from itertools import pairwise
from operator import itemgetter
from typing import NamedTuple

from relayminer.smst.mapstore import MapStore, MemoryMapStore, apply_changes
from relayminer.smst.nodes import (
    PATH_SIZE,
    PLACEHOLDER,
    SMSTInvalidArgumentError,
    encode_extension,
    extension_digest,
)
from relayminer.smst.trie import SparseMerkleSumTrie

__all__ = [
    "BulkNodes",
    "SMSTDuplicateKeyError",
    "bulk_build",
    "bulk_nodes",
    "bulk_root",
    "import_nodes",
]

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


class BulkNodes(NamedTuple):
    """A bulk-built trie as plain data: its root and every node (``keys[i]`` is the digest of
    the preimage ``values[i]``). Plain bytes, so it crosses a process boundary as it is
    (``relayminer.runtime.tree_builder``); :func:`import_nodes` makes it a trie again."""

    root: bytes
    keys: list[bytes]
    values: list[bytes]


def bulk_nodes(leaves: Iterable[Leaf]) -> BulkNodes:
    """The root and nodes of the trie holding ``leaves``, as :func:`bulk_build` stores them.

    >>> import hashlib
    >>> nodes = bulk_nodes([(hashlib.sha256(b"a").digest(), b"value-a", 1)])
    >>> import_nodes(nodes).root() == nodes.root, len(nodes.keys)
    (True, 1)
    """
    keys: list[bytes] = []
    values: list[bytes] = []
    root = _build(_sorted_entries(leaves), keys, values)
    return BulkNodes(root, keys, values)


def import_nodes(nodes: BulkNodes, store: MapStore | None = None) -> SparseMerkleSumTrie:
    """The trie of :func:`bulk_nodes`' output, its nodes written to ``store`` (a new
    :class:`MemoryMapStore` when None) and imported at the root."""
    if store is None:
        store = MemoryMapStore()
    elif not isinstance(store, MapStore):
        raise TypeError(f"store must be a MapStore, got {type(store).__name__}")
    apply_changes(store, (), nodes.keys, nodes.values)
    return SparseMerkleSumTrie.import_root(store, nodes.root)


def bulk_build(leaves: Iterable[Leaf], store: MapStore | None = None) -> SparseMerkleSumTrie:
    """The trie of ``leaves``, with every node written to ``store`` (a new
    :class:`MemoryMapStore` when None) as an ascending-path-order incremental build would have
    left it after ``commit()``. The trie is imported at the root, so nodes are read from the
    store as ``prove_closest`` (or a further ``update``) needs them."""
    if store is not None and not isinstance(store, MapStore):
        raise TypeError(f"store must be a MapStore, got {type(store).__name__}")
    return import_nodes(bulk_nodes(leaves), store)


def _sorted_entries(leaves: Iterable[Leaf]) -> list[tuple[bytes, bytes, int, bytes]]:
    """``(path, value, weight, key)`` per leaf, validated, in ascending path order (stable:
    repeats of a key stay in input order)."""
    items = leaves if isinstance(leaves, list) else list(leaves)
    if not all(
        type(k) is bytes and len(k) == PATH_SIZE and type(v) is bytes and type(w) is int
        for k, v, w in items
    ) or not all(0 <= w < _UINT64_LIMIT for _, _, w in items):
        items = [_checked(*leaf) for leaf in items]
    sha256 = hashlib.sha256
    entries = [(sha256(k).digest(), v, w, k) for k, v, w in items]
    entries.sort(key=itemgetter(0))  # on the path alone: much faster than comparing tuples
    return entries


def _checked(key: object, value: object, weight: object) -> Leaf:
    """One leaf with bytes-like key and value as ``bytes`` and an int weight, or the error
    naming what is wrong with it."""
    if not isinstance(key, bytes | bytearray | memoryview):
        raise TypeError(f"key must be bytes, got {type(key).__name__}")
    key = bytes(key)
    if len(key) != PATH_SIZE:
        raise SMSTInvalidArgumentError(f"key must be a 32-byte relay hash, got {len(key)} bytes")
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"value must be bytes, got {type(value).__name__}")
    if isinstance(weight, bool) or not isinstance(weight, int):
        raise TypeError(f"weight must be an int, got {type(weight).__name__}")
    if not 0 <= weight < _UINT64_LIMIT:
        raise SMSTInvalidArgumentError(f"weight must be in [0, 2**64), got {weight}")
    return key, bytes(value), int(weight)


def _build(
    entries: list[tuple[bytes, bytes, int, bytes]],
    keys: list[bytes] | None,
    values: list[bytes] | None,
) -> bytes:
    """The root digest of the sorted ``entries``; with ``keys``/``values`` given, every node's
    digest and preimage is appended to them (leaves first, then inner and extension nodes,
    children before parents).

    The per-leaf work (preimages, leaf hashes, split bits) runs in comprehensions; the fold
    over the split bits is the only Python loop (this is the hot path of a claim).
    """
    if not entries:
        return PLACEHOLDER
    paths = [e[0] for e in entries]
    ints = [int.from_bytes(p, "big") for p in paths]
    # split[i]: the first bit where leaves i and i + 1 differ (256: the same key twice).
    splits = [256 - (a ^ b).bit_length() for a, b in pairwise(ints)]
    del ints
    if _LEAF in splits:
        return _build(_deduplicated(entries), keys, values)
    sha256 = hashlib.sha256
    if keys is None or values is None:
        digests = [
            sha256(b"\x00" + p + v + (tail := _pack_qq(w, 1))).digest() + tail
            for p, v, w, _ in entries
        ]
        return _fold_root(splits, digests, paths)
    pres = [b"\x00" + p + v + _pack_qq(w, 1) for p, v, w, _ in entries]
    digests = [sha256(pre).digest() + pre[-16:] for pre in pres]
    keys += digests
    values += pres
    del pres
    return _fold_with_nodes(splits, digests, paths, keys, values)


def _deduplicated(
    entries: list[tuple[bytes, bytes, int, bytes]],
) -> list[tuple[bytes, bytes, int, bytes]]:
    """``entries`` (sorted) with repeats of a key dropped; a key repeated with another value or
    weight raises :class:`SMSTDuplicateKeyError`."""
    out = [entries[0]]
    for entry in entries[1:]:
        last = out[-1]
        if entry[0] != last[0]:
            out.append(entry)
        elif entry[1] != last[1] or entry[2] != last[2]:
            raise SMSTDuplicateKeyError(entry[3])
    return out


def _fold_root(splits: list[int], digests: list[bytes], paths: list[bytes]) -> bytes:
    """The root of sorted leaves from their digests and neighbour split bits.

    ``cur`` is the subtree just completed (its digest, the split bit of its top node, one of its
    leaf paths); the stack holds the inner nodes still waiting for their right child: split bit
    and left child digest as seen one level below the split (split bits strictly increase up
    the stack, a sentinel sits at the bottom). A new neighbour meeting at bit ``s`` closes every
    pending node deeper than ``s`` (``cur`` is their right child), then opens the node at ``s``
    with ``cur`` as its left child: a Cartesian-tree build, one hash per node.
    """
    sha256, pack, unpack, chain = hashlib.sha256, _pack_qq, _unpack_qq, extension_digest
    # The sums and counts travel as ints next to the digests (cheaper than unpacking them).
    stack: list[tuple[int, bytes, int, int]] = [(-1, b"", 0, 0)]
    cur, cur_bit, cur_path = digests[0], _LEAF, paths[0]
    cur_sum, cur_count = unpack(cur, 32)
    for split, digest, path in zip(splits, digests[1:], paths[1:], strict=True):
        while stack[-1][0] > split:
            b, left, left_sum, left_count = stack.pop()
            if cur_bit != _LEAF and cur_bit > b + 1:
                cur = chain(b + 1, cur_bit, cur_path, cur)
            cur_sum = (cur_sum + left_sum) & _M64
            cur_count += left_count
            tail = pack(cur_sum, cur_count)
            cur = sha256(b"\x01%b%b%b" % (left, cur, tail)).digest() + tail
            cur_bit = b
        if cur_bit != _LEAF and cur_bit > split + 1:
            cur = chain(split + 1, cur_bit, cur_path, cur)
        stack.append((split, cur, cur_sum, cur_count))
        cur, cur_bit, cur_path = digest, _LEAF, path
        cur_sum, cur_count = unpack(digest, 32)
    while len(stack) > 1:
        b, left, left_sum, left_count = stack.pop()
        if cur_bit != _LEAF and cur_bit > b + 1:
            cur = chain(b + 1, cur_bit, cur_path, cur)
        cur_sum = (cur_sum + left_sum) & _M64
        cur_count += left_count
        tail = pack(cur_sum, cur_count)
        cur = sha256(b"\x01%b%b%b" % (left, cur, tail)).digest() + tail
        cur_bit = b
    if cur_bit != _LEAF and cur_bit > 0:
        cur = extension_digest(0, cur_bit, cur_path, cur)
    return cur


def _fold_with_nodes(
    splits: list[int],
    digests: list[bytes],
    paths: list[bytes],
    keys: list[bytes],
    values: list[bytes],
) -> bytes:
    """:func:`_fold_root`, also recording every inner and extension node. Subtrees carry their
    smallest and second-smallest leaf paths: the second is what an extension above them stores
    (the leaf whose ascending-order insertion created it)."""
    sha256, pack, unpack = hashlib.sha256, _pack_qq, _unpack_qq
    add_key, add_value = keys.append, values.append
    # Pending node: split bit, left child digest, its sum and count, and the left subtree's
    # smallest and second-smallest paths.
    stack: list[tuple[int, bytes, int, int, bytes, bytes | None]] = [(-1, b"", 0, 0, b"", None)]
    cur, cur_bit, first, second = digests[0], _LEAF, paths[0], None
    cur_sum, cur_count = unpack(cur, 32)
    for split, digest, path in zip(splits, digests[1:], paths[1:], strict=True):
        while stack[-1][0] > split:
            b, left, left_sum, left_count, left_first, left_second = stack.pop()
            if cur_bit != _LEAF and cur_bit > b + 1:
                cur = _chain(b + 1, cur_bit, first, second, cur, keys, values)
            cur_sum = (cur_sum + left_sum) & _M64
            cur_count += left_count
            tail = pack(cur_sum, cur_count)
            pre = b"\x01%b%b%b" % (left, cur, tail)
            cur = sha256(pre).digest() + tail
            add_key(cur)
            add_value(pre)
            cur_bit, first, second = b, left_first, first if left_second is None else left_second
        if cur_bit != _LEAF and cur_bit > split + 1:
            cur = _chain(split + 1, cur_bit, first, second, cur, keys, values)
        stack.append((split, cur, cur_sum, cur_count, first, second))
        cur, cur_bit, first, second = digest, _LEAF, path, None
        cur_sum, cur_count = unpack(digest, 32)
    while len(stack) > 1:
        b, left, left_sum, left_count, left_first, left_second = stack.pop()
        if cur_bit != _LEAF and cur_bit > b + 1:
            cur = _chain(b + 1, cur_bit, first, second, cur, keys, values)
        cur_sum = (cur_sum + left_sum) & _M64
        cur_count += left_count
        tail = pack(cur_sum, cur_count)
        pre = b"\x01%b%b%b" % (left, cur, tail)
        cur = sha256(pre).digest() + tail
        add_key(cur)
        add_value(pre)
        cur_bit, first, second = b, left_first, first if left_second is None else left_second
    if cur_bit != _LEAF and cur_bit > 0:
        cur = _chain(0, cur_bit, first, second, cur, keys, values)
    return cur


def _chain(
    start: int,
    end: int,
    first: bytes,
    second: bytes | None,
    child: bytes,
    keys: list[bytes],
    values: list[bytes],
) -> bytes:
    """Digest of the inner node ``child`` (split at ``end``) seen from depth ``start``: the
    extension ``[start, end)`` above it. Every leaf below shares bits ``[0, end)``, so any of
    their paths gives the chain's sides; the stored extension carries the second-smallest."""
    assert second is not None  # an inner node has two leaves below it
    digest = extension_digest(start, end, first, child)
    keys.append(digest)
    values.append(encode_extension(start, end, second, child))
    return digest
