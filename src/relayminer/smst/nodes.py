"""Node codec of the Sparse Merkle Sum Trie (docs/smst.md): pure functions, no I/O.

A node has a *preimage* (its stored bytes) and a 48-byte *digest*
``sha256(preimage) || BE64(sum) || BE64(count)``. The extension node is the exception: its digest
is the digest of the chain of inner nodes it stands for (§3.4). The empty subtree is the
48-zero-byte :data:`PLACEHOLDER`.

>>> payload = leaf_payload(b"value-a", 1)
>>> payload.hex()
'76616c75652d6100000000000000010000000000000001'
>>> path = bytes.fromhex("bf5d3affb73efd2ec6c36ad3112dd933efed63c4e1cbffcfa88e2759c144f2d8")
>>> leaf_digest(path, payload).hex()[:16], digest_sum(leaf_digest(path, payload))
('61200462f2836c69', 1)
>>> calc_root([(path, payload)]) == leaf_digest(path, payload)
True
>>> calc_root([]) == PLACEHOLDER
True
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from relayminer.errors import RelayMinerError

__all__ = [
    "DIGEST_SIZE",
    "HASH_SIZE",
    "MAX_DEPTH",
    "PATH_SIZE",
    "PLACEHOLDER",
    "ParsedExtension",
    "ParsedInner",
    "ParsedLeaf",
    "SMSTError",
    "SMSTInvalidArgumentError",
    "SMSTKeyNotFoundError",
    "SMSTNodeCorruptError",
    "SMSTNodeMissingError",
    "bit",
    "calc_root",
    "digest_count",
    "digest_sum",
    "encode_extension",
    "encode_inner",
    "encode_leaf",
    "extension_digest",
    "hash_preimage",
    "inner_digest",
    "leaf_digest",
    "leaf_payload",
    "parse_node",
]

HASH_SIZE = 32
PATH_SIZE = 32
DIGEST_SIZE = 48
MAX_DEPTH = 256
PLACEHOLDER = bytes(DIGEST_SIZE)
UINT64_MASK = (1 << 64) - 1

LEAF_PREFIX = 0
INNER_PREFIX = 1
EXT_PREFIX = 2

INNER_PREIMAGE_SIZE = 1 + 2 * DIGEST_SIZE + 16  # 113
EXT_PREIMAGE_SIZE = 1 + 2 + PATH_SIZE + DIGEST_SIZE + 16  # 99
MIN_LEAF_PREIMAGE_SIZE = 1 + PATH_SIZE + 16  # 49

_QQ = struct.Struct(">QQ")
_sha256 = hashlib.sha256


# --- errors ---------------------------------------------------------------------------------


class SMSTError(RelayMinerError):
    """Base class of every Sparse Merkle Sum Trie error."""


class SMSTInvalidArgumentError(SMSTError, ValueError):
    """An argument has the right type but an invalid value (length, range)."""


class SMSTKeyNotFoundError(SMSTError, KeyError):
    """``delete`` of a key that is not in the trie (Go: ``key not found``)."""

    def __init__(self, key: bytes) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"key not found: {self.key.hex()}"


class SMSTNodeMissingError(SMSTError):
    """A node referenced by the trie is not in the node store.

    ``digest`` is the 48-byte store key that was looked up. The operation that raised it left
    the trie logically unchanged, so it can be retried once the node is available.
    """

    def __init__(self, digest: bytes) -> None:
        super().__init__(f"node missing from store: {digest.hex()}")
        self.digest = digest


class SMSTNodeCorruptError(SMSTError, ValueError):
    """Stored node bytes do not parse as a node, or do not hash to the key they are stored under."""

    def __init__(self, digest: bytes | None, reason: str) -> None:
        where = f" (store key {digest.hex()})" if digest is not None else ""
        super().__init__(f"corrupt node{where}: {reason}")
        self.digest = digest
        self.reason = reason


# --- bits and sums --------------------------------------------------------------------------


def bit(path: bytes, i: int) -> int:
    """Bit ``i`` of ``path``, counted from the most significant bit of byte 0.

    >>> bit(b"\\x80", 0), bit(b"\\x80", 1), bit(b"\\x00\\x01", 15)
    (1, 0, 1)
    """
    return (path[i >> 3] >> (7 - (i & 7))) & 1


def digest_sum(digest: bytes) -> int:
    """The sum field of a 48-byte digest (bytes 32..40, big-endian)."""
    return int.from_bytes(digest[32:40], "big")


def digest_count(digest: bytes) -> int:
    """The count field of a 48-byte digest (bytes 40..48, big-endian)."""
    return int.from_bytes(digest[40:48], "big")


def leaf_payload(value: bytes, weight: int) -> bytes:
    """``value || BE64(weight) || BE64(1)``: what a leaf stores (the Go "value hash")."""
    return value + _QQ.pack(weight & UINT64_MASK, 1)


# --- encodings and digests ------------------------------------------------------------------


def encode_leaf(path: bytes, payload: bytes) -> bytes:
    """Leaf preimage ``0x00 || path || payload`` (§3.2)."""
    return b"\x00" + path + payload


def leaf_digest(path: bytes, payload: bytes) -> bytes:
    """Leaf digest ``sha256(preimage) || last 16 bytes of preimage`` (§3.2)."""
    pre = b"\x00" + path + payload
    return _sha256(pre).digest() + pre[-16:]


def _totals(left: bytes, right: bytes) -> bytes:
    # Sum and count of each child are its last 16 bytes; totals wrap mod 2**64.
    ls, lc = _QQ.unpack_from(left, len(left) - 16)
    rs, rc = _QQ.unpack_from(right, len(right) - 16)
    return _QQ.pack((ls + rs) & UINT64_MASK, (lc + rc) & UINT64_MASK)


def encode_inner(left: bytes, right: bytes) -> bytes:
    """Inner preimage ``0x01 || L || R || BE64(sL+sR) || BE64(cL+cR)`` (§3.3)."""
    return b"\x01" + left + right + _totals(left, right)


def inner_digest(left: bytes, right: bytes) -> bytes:
    """Inner digest of two child digests (§3.3).

    >>> inner_digest(PLACEHOLDER, PLACEHOLDER)[32:] == bytes(16)
    True
    """
    tail = _totals(left, right)
    return _sha256(b"\x01" + left + right + tail).digest() + tail


def encode_extension(start: int, end: int, path: bytes, child: bytes) -> bytes:
    """Extension preimage ``0x02 || start || end || path || C || C[32:48]`` (§3.4)."""
    return b"\x02" + bytes((start, end)) + path + child + child[-16:]


def extension_digest(start: int, end: int, path: bytes, child: bytes) -> bytes:
    """Digest of the inner-node chain an extension stands for (§3.4).

    >>> c = inner_digest(PLACEHOLDER, PLACEHOLDER)
    >>> extension_digest(3, 4, bytes(32), c) == inner_digest(c, PLACEHOLDER)
    True

    That is ``h = C``, then for ``i = end-1`` down to ``start``: ``h = inner_digest(h,
    PLACEHOLDER)`` if bit ``i`` of ``path`` is 0, else ``inner_digest(PLACEHOLDER, h)``. The
    placeholder adds nothing to the totals, so every level has the child's totals (its last 16
    bytes) and the loop below only hashes.
    """
    if start >= end:
        return child
    tail = child[-16:]
    sha = _sha256
    h = child
    for i in range(end - 1, start - 1, -1):
        if (path[i >> 3] >> (7 - (i & 7))) & 1:
            h = sha(b"\x01" + PLACEHOLDER + h + tail).digest() + tail
        else:
            h = sha(b"\x01" + h + PLACEHOLDER + tail).digest() + tail
    return h


def hash_preimage(data: bytes) -> bytes | None:
    """Digest of serialized node bytes, as proof verification computes it (§9 step 1).

    Extension bytes get the chain digest, anything else ``sha256(data) || data[-16:]``.
    Returns ``None`` where the Go code would fail on malformed bytes (too short).
    """
    if not data:
        return None
    if data[0] == EXT_PREFIX:
        if len(data) < 3 + PATH_SIZE + 16:
            return None
        child = data[3 + PATH_SIZE : len(data) - 16]
        start, end = data[1], data[2]
        if start < end and len(child) < 16:
            return None
        return extension_digest(start, end, data[3 : 3 + PATH_SIZE], child)
    if len(data) < 16:
        return None
    return _sha256(data).digest() + data[-16:]


# --- parsing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedLeaf:
    path: bytes
    payload: bytes


@dataclass(frozen=True, slots=True)
class ParsedInner:
    left: bytes
    right: bytes


@dataclass(frozen=True, slots=True)
class ParsedExtension:
    start: int
    end: int
    path: bytes
    child: bytes


ParsedNode = ParsedLeaf | ParsedInner | ParsedExtension


def parse_node(data: bytes, digest: bytes | None = None) -> ParsedNode:
    """Parse stored node bytes (§3.5), checking them against ``digest`` when given.

    Raises :class:`SMSTNodeCorruptError` naming the reason when the bytes are not a node the
    Go library could have written (bad kind byte or length, leaf count other than 1, totals
    that are not the children's, extension of length 0 or over the empty subtree, inner node
    with two empty children) or do not hash to ``digest``.

    >>> parse_node(b"\\x07")
    Traceback (most recent call last):
    ...
    relayminer.smst.nodes.SMSTNodeCorruptError: corrupt node: unknown node kind byte 0x07
    """
    if not isinstance(data, bytes):
        raise TypeError(f"node data must be bytes, got {type(data).__name__}")
    if not data:
        raise SMSTNodeCorruptError(digest, "empty node bytes")
    kind = data[0]
    node: ParsedNode
    if kind == LEAF_PREFIX:
        if len(data) < MIN_LEAF_PREIMAGE_SIZE:
            raise SMSTNodeCorruptError(
                digest, f"leaf is {len(data)} bytes, need at least {MIN_LEAF_PREIMAGE_SIZE}"
            )
        if data[-8:] != b"\x00\x00\x00\x00\x00\x00\x00\x01":
            raise SMSTNodeCorruptError(digest, "leaf count field is not 1")
        node = ParsedLeaf(data[1 : 1 + PATH_SIZE], data[1 + PATH_SIZE :])
        computed = _sha256(data).digest() + data[-16:]
    elif kind == INNER_PREFIX:
        if len(data) != INNER_PREIMAGE_SIZE:
            raise SMSTNodeCorruptError(
                digest, f"inner node is {len(data)} bytes, expected {INNER_PREIMAGE_SIZE}"
            )
        left, right = data[1:49], data[49:97]
        if left == PLACEHOLDER and right == PLACEHOLDER:
            raise SMSTNodeCorruptError(digest, "inner node with two empty children")
        if _totals(left, right) != data[97:]:
            raise SMSTNodeCorruptError(digest, "inner totals are not the children's sum/count")
        if digest_count(left) + digest_count(right) > UINT64_MASK:
            raise SMSTNodeCorruptError(digest, "children's counts overflow 64 bits")
        node = ParsedInner(left, right)
        computed = _sha256(data).digest() + data[-16:]
    elif kind == EXT_PREFIX:
        if len(data) != EXT_PREIMAGE_SIZE:
            raise SMSTNodeCorruptError(
                digest, f"extension node is {len(data)} bytes, expected {EXT_PREIMAGE_SIZE}"
            )
        start, end = data[1], data[2]
        if start >= end:
            raise SMSTNodeCorruptError(digest, f"extension bounds [{start}, {end}) are empty")
        child = data[35:83]
        if child == PLACEHOLDER:
            raise SMSTNodeCorruptError(digest, "extension over the empty subtree")
        if data[83:] != child[32:]:
            raise SMSTNodeCorruptError(digest, "extension totals differ from its child's")
        node = ParsedExtension(start, end, data[3:35], child)
        computed = extension_digest(start, end, node.path, child)
    else:
        raise SMSTNodeCorruptError(digest, f"unknown node kind byte 0x{kind:02x}")
    if digest is not None and computed != digest:
        raise SMSTNodeCorruptError(digest, "node bytes do not hash to their store key")
    return node


# --- canonical root (§5) --------------------------------------------------------------------


def calc_root(leaves: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The root digest of a set of ``(path, payload)`` leaves, by the canonical definition (§5).

    Independent of insertion order and of the compressed shape the trie keeps in memory: a
    leaf sits at the shallowest depth where it is alone in its subtree, and a subtree with one
    empty side hashes with a placeholder sibling. Paths must be distinct 32-byte strings.
    """
    items: dict[bytes, bytes] = {}
    for path, payload in leaves:
        if len(path) != PATH_SIZE:
            raise SMSTInvalidArgumentError(f"path must be {PATH_SIZE} bytes, got {len(path)}")
        if path in items:
            raise SMSTInvalidArgumentError(f"duplicate path {path.hex()}")
        items[path] = payload
    return _subtree_root(list(items.items()), 0)


def _subtree_root(leaves: list[tuple[bytes, bytes]], depth: int) -> bytes:
    if not leaves:
        return PLACEHOLDER
    if len(leaves) == 1:
        path, payload = leaves[0]
        return leaf_digest(path, payload)
    left = [leaf for leaf in leaves if bit(leaf[0], depth) == 0]
    right = [leaf for leaf in leaves if bit(leaf[0], depth) == 1]
    return inner_digest(_subtree_root(left, depth + 1), _subtree_root(right, depth + 1))
