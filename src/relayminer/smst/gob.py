"""Go ``encoding/gob`` bytes of ``smt.SparseCompactMerkleClosestProof`` (docs/smst.md).

``MsgSubmitProof.proof`` is what ``SparseCompactMerkleClosestProof.Marshal()`` returns: a gob
stream from a fresh encoder, i.e. the constant 286-byte :data:`PREFIX` (the three type
definitions, ids 64-66) followed by one value message. This module writes that stream byte for
byte and reads back streams that carry the same :data:`PREFIX`; other gob streams (other type
ids or layouts) are rejected with :class:`GobDecodeError`.

The records here are the wire structs, field for field in Go declaration order; the proof
semantics live in :mod:`relayminer.smst.proof`.

>>> encode_uint(200).hex(), encode_uint(660).hex(), encode_int(-64).hex(), encode_int(64).hex()
('ffc8', 'fe0294', '7f', 'ff80')
>>> wire = GobCompactClosestProof(b"\\x01" * 32, (b"\\x00",), b"\\x00", bytes(48), None,
...                               GobCompactMerkleProof((), None, b"", 0, None))
>>> data = encode_compact_closest_proof(wire)
>>> len(data), decode_compact_closest_proof(data) == wire
(383, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from relayminer.smst.nodes import SMSTError

__all__ = [
    "PREFIX",
    "GobCompactClosestProof",
    "GobCompactMerkleProof",
    "GobDecodeError",
    "decode_compact_closest_proof",
    "encode_compact_closest_proof",
    "encode_int",
    "encode_uint",
]

PREFIX = bytes.fromhex(
    # id 64: struct SparseCompactMerkleClosestProof
    "ff877f0301011f537061727365436f6d706163744d65726b6c65436c6f7365737450726f6f6601ff8000010601"
    "0450617468010a00010b466c69707065644269747301ff820001054465707468010a00010b436c6f7365737450"
    "617468010a000110436c6f7365737456616c756548617368010a00010c436c6f7365737450726f6f6601ff8400"
    "0000"
    # id 65: [][]uint8
    "17ff81020101095b5d5b5d75696e743801ff8200010a0000"
    # id 66: struct SparseCompactMerkleProof
    "7cff8303010118537061727365436f6d706163744d65726b6c6550726f6f6601ff840001050109536964654e6f"
    "64657301ff820001154e6f6e4d656d626572736869704c65616644617461010a0001074269744d61736b010a00"
    "010c4e756d536964654e6f646573010400010b5369626c696e6744617461010a000000"
)
assert len(PREFIX) == 286

CLOSEST_PROOF_TYPE_ID = 64
_UINT64_LIMIT = 1 << 64


class GobDecodeError(SMSTError, ValueError):
    """The bytes are not a gob stream of the compact closest proof this module understands."""


class GobCompactMerkleProof(NamedTuple):
    """Wire struct ``smt.SparseCompactMerkleProof`` (field order = Go declaration order)."""

    side_nodes: tuple[bytes, ...]
    non_membership_leaf_data: bytes | None
    bit_mask: bytes
    num_side_nodes: int
    sibling_data: bytes | None


class GobCompactClosestProof(NamedTuple):
    """Wire struct ``smt.SparseCompactMerkleClosestProof``.

    A field absent from a decoded stream is ``None`` for the optional byte strings
    (``ClosestValueHash`` and the inner ``NonMembershipLeafData``/``SiblingData``), otherwise
    empty. ``ClosestProof`` is a non-nil pointer, so it is always written and must be present.
    """

    path: bytes
    flipped_bits: tuple[bytes, ...]
    depth: bytes
    closest_path: bytes
    closest_value_hash: bytes | None
    closest_proof: GobCompactMerkleProof


# --- encoding -------------------------------------------------------------------------------


def encode_uint(n: int) -> bytes:
    """Gob unsigned integer: one byte below 128, else ``256 - len`` and the big-endian bytes."""
    if not 0 <= n < _UINT64_LIMIT:
        raise ValueError(f"gob uint out of range: {n}")
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((256 - len(body),)) + body


def encode_int(x: int) -> bytes:
    """Gob signed integer: zig-zag (``2x`` or ``2(-x-1)+1``), then :func:`encode_uint`."""
    return encode_uint(x << 1 if x >= 0 else ((~x) << 1) | 1)


def _bytes_field(out: list[bytes], index: int, last: int, value: bytes | None) -> int:
    if not value:
        return last
    out.append(encode_uint(index - last))
    out.append(encode_uint(len(value)))
    out.append(value)
    return index


def _list_field(out: list[bytes], index: int, last: int, values: Sequence[bytes]) -> int:
    if not values:
        return last
    out.append(encode_uint(index - last))
    out.append(encode_uint(len(values)))
    for v in values:
        out.append(encode_uint(len(v)))
        out.append(v)
    return index


def _encode_inner(p: GobCompactMerkleProof) -> bytes:
    out: list[bytes] = []
    last = _list_field(out, 0, -1, p.side_nodes)
    last = _bytes_field(out, 1, last, p.non_membership_leaf_data)
    last = _bytes_field(out, 2, last, p.bit_mask)
    if p.num_side_nodes:
        out.append(encode_uint(3 - last))
        out.append(encode_int(p.num_side_nodes))
        last = 3
    _bytes_field(out, 4, last, p.sibling_data)
    out.append(b"\x00")
    return b"".join(out)


def encode_compact_closest_proof(p: GobCompactClosestProof) -> bytes:
    """The exact bytes of Go ``SparseCompactMerkleClosestProof.Marshal()``."""
    out: list[bytes] = [encode_int(CLOSEST_PROOF_TYPE_ID)]
    last = _bytes_field(out, 0, -1, p.path)
    last = _list_field(out, 1, last, p.flipped_bits)
    last = _bytes_field(out, 2, last, p.depth)
    last = _bytes_field(out, 3, last, p.closest_path)
    last = _bytes_field(out, 4, last, p.closest_value_hash)
    out.append(encode_uint(5 - last))  # a non-nil struct pointer is always sent
    out.append(_encode_inner(p.closest_proof))
    out.append(b"\x00")
    message = b"".join(out)
    return PREFIX + encode_uint(len(message)) + message


# --- decoding -------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data = data
        self.pos = pos
        self.end = end

    def fail(self, reason: str) -> GobDecodeError:
        return GobDecodeError(f"gob decode at byte {self.pos}: {reason}")

    def read_uint(self) -> int:
        if self.pos >= self.end:
            raise self.fail("unexpected end of data")
        b = self.data[self.pos]
        self.pos += 1
        if b < 0x80:
            return b
        n = 256 - b
        if n > 8:
            raise self.fail("encoded unsigned integer out of range")
        if self.pos + n > self.end:
            raise self.fail("unexpected end of data in integer")
        value = int.from_bytes(self.data[self.pos : self.pos + n], "big")
        self.pos += n
        return value

    def read_int(self) -> int:
        u = self.read_uint()
        return ~(u >> 1) if u & 1 else u >> 1

    def read_bytes(self) -> bytes:
        n = self.read_uint()
        if n > self.end - self.pos:
            raise self.fail(f"byte string of length {n} exceeds the message")
        value = self.data[self.pos : self.pos + n]
        self.pos += n
        return value

    def read_bytes_list(self) -> tuple[bytes, ...]:
        n = self.read_uint()
        if n > self.end - self.pos:  # every element takes at least one byte
            raise self.fail(f"slice of length {n} exceeds the message")
        return tuple(self.read_bytes() for _ in range(n))

    def next_field(self, last: int, count: int) -> int:
        """The next field number of a struct with ``count`` fields, or -1 at its end."""
        delta = self.read_uint()
        if delta == 0:
            return -1
        field = last + delta
        if field >= count:
            raise self.fail(f"field number {field} out of range (struct has {count})")
        return field


def _decode_inner(r: _Reader) -> GobCompactMerkleProof:
    side_nodes: tuple[bytes, ...] = ()
    nmld: bytes | None = None
    bit_mask = b""
    num_side_nodes = 0
    sibling: bytes | None = None
    field = r.next_field(-1, 5)
    while field >= 0:
        if field == 0:
            side_nodes = r.read_bytes_list()
        elif field == 1:
            nmld = r.read_bytes()
        elif field == 2:
            bit_mask = r.read_bytes()
        elif field == 3:
            num_side_nodes = r.read_int()
        else:
            sibling = r.read_bytes()
        field = r.next_field(field, 5)
    return GobCompactMerkleProof(side_nodes, nmld, bit_mask, num_side_nodes, sibling)


def decode_compact_closest_proof(data: bytes) -> GobCompactClosestProof:
    """Parse a stream written by :func:`encode_compact_closest_proof` (or by the Go miner).

    Raises :class:`GobDecodeError` for anything else: another type-definition prefix, a
    truncated or overlong message, unknown fields, or trailing bytes.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"gob data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data.startswith(PREFIX):
        raise GobDecodeError(
            "stream does not start with the type definitions of SparseCompactMerkleClosestProof"
            " (ids 64-66) that smt's Marshal emits; other gob streams are not supported"
        )
    r = _Reader(data, len(PREFIX), len(data))
    length = r.read_uint()
    if length != r.end - r.pos:
        raise r.fail(f"message length {length} but {r.end - r.pos} bytes follow")
    type_id = r.read_int()
    if type_id != CLOSEST_PROOF_TYPE_ID:
        raise r.fail(f"value of type id {type_id}, expected {CLOSEST_PROOF_TYPE_ID}")
    path = b""
    flipped: tuple[bytes, ...] = ()
    depth = b""
    closest_path = b""
    value_hash: bytes | None = None
    inner: GobCompactMerkleProof | None = None
    field = r.next_field(-1, 6)
    while field >= 0:
        if field == 0:
            path = r.read_bytes()
        elif field == 1:
            flipped = r.read_bytes_list()
        elif field == 2:
            depth = r.read_bytes()
        elif field == 3:
            closest_path = r.read_bytes()
        elif field == 4:
            value_hash = r.read_bytes()
        else:
            inner = _decode_inner(r)
        field = r.next_field(field, 6)
    if r.pos != r.end:
        raise r.fail("extra data after the value")
    if inner is None:
        raise GobDecodeError("ClosestProof is missing (Go would dereference a nil pointer)")
    return GobCompactClosestProof(path, flipped, depth, closest_path, value_hash, inner)
