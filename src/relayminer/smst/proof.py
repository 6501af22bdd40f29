"""Closest proofs of the Sparse Merkle Sum Trie: objects, compaction, gob bytes, verification.

Mirrors Go ``smt`` v0.14.1 (docs/smst.md): :class:`ClosestProof` is
``SparseMerkleClosestProof`` (what ``prove_closest`` returns) and :class:`CompactClosestProof`
is ``SparseCompactMerkleClosestProof`` (what the chain receives, as gob bytes from
:meth:`CompactClosestProof.to_bytes`).

Verification never raises on a malformed proof: it returns ``False`` (only arguments of the
wrong type raise ``TypeError``).

>>> proof_path(bytes.fromhex("89a1a98e709fa672374b463bbd8d5946ff4f530c5e65be07bf17ef8473ec96e9"),
...            "session-abc").hex()
'682830082afc020c0e0590ff566cf959666085a4fd85666e5b9c59be4fb2edb3'
>>> empty = ClosestProof(b"\\x01" * 32, (0,), 0, bytes(48), None, MerkleProof())
>>> verify_closest_proof(empty, bytes(48)), len(empty.compact().to_bytes())
(True, 383)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from relayminer.smst.gob import (
    GobCompactClosestProof,
    GobCompactMerkleProof,
    decode_compact_closest_proof,
    encode_compact_closest_proof,
)
from relayminer.smst.nodes import (
    DIGEST_SIZE,
    MAX_DEPTH,
    PATH_SIZE,
    PLACEHOLDER,
    SMSTError,
    hash_preimage,
    inner_digest,
)
from relayminer.validate import as_bytes

__all__ = [
    "ClosestProof",
    "CompactClosestProof",
    "CompactMerkleProof",
    "MerkleProof",
    "SMSTBadProofError",
    "proof_path",
    "verify_closest_proof",
    "verify_compact_closest_proof",
]

_MIN_LEAF_DATA = 1 + PATH_SIZE  # a non-membership leaf holds at least prefix + path
_MAX_COMPACT_INT = 2  # minBytes(256): compact Depth/FlippedBits entries are at most 2 bytes


class SMSTBadProofError(SMSTError, ValueError):
    """A proof fails the structural checks of compaction or decompaction (Go ``ErrBadProof``)."""


# --- argument normalisation -----------------------------------------------------------------


def _opt_bytes(name: str, value: object) -> bytes | None:
    return None if value is None else as_bytes(name, value)


def _bytes_seq(name: str, values: object) -> tuple[bytes, ...]:
    if isinstance(values, bytes | bytearray | memoryview | str) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence of bytes, got {type(values).__name__}")
    return tuple(as_bytes(f"{name}[{i}]", v) for i, v in enumerate(values))


def _int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _int_to_bytes(i: int) -> bytes:
    """Go ``intToBytes``: minimal big-endian bytes, 0 -> ``00``."""
    return i.to_bytes(max(1, (i.bit_length() + 7) // 8), "big")


def _bytes_to_int(b: bytes) -> int:
    return int.from_bytes(b, "big")


def _normalise_side_node(node: bytes) -> bytes:
    """Pad with zeros or truncate to 48 bytes, as Go copies side nodes into a 48-byte buffer."""
    return node[:DIGEST_SIZE] if len(node) >= DIGEST_SIZE else node + bytes(DIGEST_SIZE - len(node))


# --- proof objects --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MerkleProof:
    """Go ``SparseMerkleProof``: side nodes ordered leaf level first."""

    side_nodes: tuple[bytes, ...] = ()
    non_membership_leaf_data: bytes | None = None
    sibling_data: bytes | None = None

    def __post_init__(self) -> None:
        _set(self, "side_nodes", _bytes_seq("side_nodes", self.side_nodes))
        _set(
            self,
            "non_membership_leaf_data",
            _opt_bytes("non_membership_leaf_data", self.non_membership_leaf_data),
        )
        _set(self, "sibling_data", _opt_bytes("sibling_data", self.sibling_data))


@dataclass(frozen=True, slots=True)
class CompactMerkleProof:
    """Go ``SparseCompactMerkleProof``: placeholders replaced by bits of ``bit_mask``."""

    side_nodes: tuple[bytes, ...] = ()
    non_membership_leaf_data: bytes | None = None
    bit_mask: bytes = b""
    num_side_nodes: int = 0
    sibling_data: bytes | None = None

    def __post_init__(self) -> None:
        _set(self, "side_nodes", _bytes_seq("side_nodes", self.side_nodes))
        _set(
            self,
            "non_membership_leaf_data",
            _opt_bytes("non_membership_leaf_data", self.non_membership_leaf_data),
        )
        _set(self, "bit_mask", as_bytes("bit_mask", self.bit_mask))
        _set(self, "num_side_nodes", _int("num_side_nodes", self.num_side_nodes))
        _set(self, "sibling_data", _opt_bytes("sibling_data", self.sibling_data))


@dataclass(frozen=True, slots=True)
class ClosestProof:
    """Go ``SparseMerkleClosestProof``: proof of the leaf whose path is closest to ``path``.

    ``closest_value_hash`` is the leaf payload ``value || BE64(weight) || BE64(1)`` (None for
    the empty trie, whose ``closest_path`` is the 48-byte placeholder).
    """

    path: bytes
    flipped_bits: tuple[int, ...]
    depth: int
    closest_path: bytes
    closest_value_hash: bytes | None
    closest_proof: MerkleProof

    def __post_init__(self) -> None:
        _set(self, "path", as_bytes("path", self.path))
        bits = self.flipped_bits
        if not isinstance(bits, Sequence):
            raise TypeError(f"flipped_bits must be a sequence of int, got {type(bits).__name__}")
        _set(self, "flipped_bits", tuple(_int("flipped_bits[]", b) for b in bits))
        _set(self, "depth", _int("depth", self.depth))
        _set(self, "closest_path", as_bytes("closest_path", self.closest_path))
        _set(self, "closest_value_hash", _opt_bytes("closest_value_hash", self.closest_value_hash))
        if not isinstance(self.closest_proof, MerkleProof):
            raise TypeError("closest_proof must be a MerkleProof")

    @property
    def closest_value(self) -> bytes:
        """The proven leaf's value (Go ``GetValueHash``): payload minus sum and count."""
        v = self.closest_value_hash
        return b"" if v is None else v[:-16]

    @property
    def closest_weight(self) -> int:
        """The proven leaf's weight (0 when there is no leaf)."""
        v = self.closest_value_hash
        return 0 if v is None or len(v) < 16 else int.from_bytes(v[-16:-8], "big")

    def compact(self) -> CompactClosestProof:
        """Go ``CompactClosestProof``; raises :class:`SMSTBadProofError` on a malformed proof."""
        problem = _closest_proof_problem(self)
        if problem is not None:
            raise SMSTBadProofError(f"bad proof: {problem}")
        inner = self.closest_proof
        n = len(inner.side_nodes)
        mask = bytearray((n + 7) // 8)
        kept: list[bytes] = []
        for i, node in enumerate(inner.side_nodes):
            node = _normalise_side_node(node)
            if node == PLACEHOLDER:
                mask[i >> 3] |= 0x80 >> (i & 7)
            else:
                kept.append(node)
        return CompactClosestProof(
            path=self.path,
            flipped_bits=tuple(_int_to_bytes(b) for b in self.flipped_bits),
            depth=_int_to_bytes(self.depth),
            closest_path=self.closest_path,
            closest_value_hash=self.closest_value_hash,
            closest_proof=CompactMerkleProof(
                side_nodes=tuple(kept),
                non_membership_leaf_data=inner.non_membership_leaf_data,
                bit_mask=bytes(mask),
                num_side_nodes=n,
                sibling_data=inner.sibling_data,
            ),
        )

    def verify(self, root: bytes) -> bool:
        """Same as :func:`verify_closest_proof`."""
        return verify_closest_proof(self, root)


@dataclass(frozen=True, slots=True)
class CompactClosestProof:
    """Go ``SparseCompactMerkleClosestProof``; ``depth`` and ``flipped_bits`` are minimal
    big-endian byte strings."""

    path: bytes
    flipped_bits: tuple[bytes, ...]
    depth: bytes
    closest_path: bytes
    closest_value_hash: bytes | None
    closest_proof: CompactMerkleProof

    def __post_init__(self) -> None:
        _set(self, "path", as_bytes("path", self.path))
        _set(self, "flipped_bits", _bytes_seq("flipped_bits", self.flipped_bits))
        _set(self, "depth", as_bytes("depth", self.depth))
        _set(self, "closest_path", as_bytes("closest_path", self.closest_path))
        _set(self, "closest_value_hash", _opt_bytes("closest_value_hash", self.closest_value_hash))
        if not isinstance(self.closest_proof, CompactMerkleProof):
            raise TypeError("closest_proof must be a CompactMerkleProof")

    def to_bytes(self) -> bytes:
        """Go ``Marshal()``: the gob stream that becomes ``MsgSubmitProof.proof``."""
        inner = self.closest_proof
        return encode_compact_closest_proof(
            GobCompactClosestProof(
                self.path,
                self.flipped_bits,
                self.depth,
                self.closest_path,
                self.closest_value_hash,
                GobCompactMerkleProof(
                    inner.side_nodes,
                    inner.non_membership_leaf_data,
                    inner.bit_mask,
                    inner.num_side_nodes,
                    inner.sibling_data,
                ),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactClosestProof:
        """Go ``Unmarshal`` for streams with the standard type prefix (see
        :mod:`relayminer.smst.gob`).

        Raises :class:`relayminer.smst.gob.GobDecodeError` on anything else.
        """
        wire = decode_compact_closest_proof(data)
        inner = wire.closest_proof
        return cls(
            path=wire.path,
            flipped_bits=wire.flipped_bits,
            depth=wire.depth,
            closest_path=wire.closest_path,
            closest_value_hash=wire.closest_value_hash,
            closest_proof=CompactMerkleProof(
                side_nodes=inner.side_nodes,
                non_membership_leaf_data=inner.non_membership_leaf_data,
                bit_mask=inner.bit_mask,
                num_side_nodes=inner.num_side_nodes,
                sibling_data=inner.sibling_data,
            ),
        )

    def decompact(self) -> ClosestProof:
        """Go ``DecompactClosestProof``; raises :class:`SMSTBadProofError` when malformed."""
        problem = _compact_proof_problem(self)
        if problem is not None:
            raise SMSTBadProofError(f"bad proof: {problem}")
        inner = self.closest_proof
        side_nodes: list[bytes] = []
        position = 0
        for i in range(inner.num_side_nodes):
            if (inner.bit_mask[i >> 3] >> (7 - (i & 7))) & 1:
                side_nodes.append(PLACEHOLDER)
            else:
                side_nodes.append(inner.side_nodes[position])
                position += 1
        return ClosestProof(
            path=self.path,
            flipped_bits=tuple(_bytes_to_int(b) for b in self.flipped_bits),
            depth=_bytes_to_int(self.depth),
            closest_path=self.closest_path,
            closest_value_hash=self.closest_value_hash,
            closest_proof=MerkleProof(
                side_nodes=tuple(side_nodes),
                non_membership_leaf_data=inner.non_membership_leaf_data,
                sibling_data=inner.sibling_data,
            ),
        )

    def verify(self, root: bytes) -> bool:
        """Same as :func:`verify_compact_closest_proof`."""
        return verify_compact_closest_proof(self, root)


# --- structural checks (§9 step 1, §8.3) -----------------------------------------------------


def _closest_proof_problem(p: ClosestProof) -> str | None:
    """Why ``p`` fails Go's ``validateBasic`` (or would make Go panic), else None."""
    if len(p.path) != PATH_SIZE:
        return f"path is {len(p.path)} bytes, want {PATH_SIZE}"
    depth = p.depth
    if not 0 <= depth <= MAX_DEPTH:
        return f"depth {depth} outside [0, {MAX_DEPTH}]"
    work = int.from_bytes(p.path, "big")
    for b in p.flipped_bits:
        if not 0 <= b <= depth:
            return f"flipped bit {b} outside [0, {depth}]"
        if b >= MAX_DEPTH:
            return f"flipped bit {b} is beyond the path"
        work ^= 1 << (255 - b)
    if depth:
        cp = p.closest_path
        if len(cp) * 8 < depth:
            return f"closest path of {len(cp)} bytes is shorter than depth {depth}"
        closest = int.from_bytes(cp[:PATH_SIZE].ljust(PATH_SIZE, b"\x00"), "big")
        if (work ^ closest) >> (MAX_DEPTH - depth):
            return "closest path does not share the flipped path's first `depth` bits"
    return _merkle_proof_problem(p.closest_proof)


def _merkle_proof_problem(p: MerkleProof) -> str | None:
    side_nodes = p.side_nodes
    if len(side_nodes) > MAX_DEPTH:
        return f"{len(side_nodes)} side nodes, max {MAX_DEPTH}"
    nmld = p.non_membership_leaf_data
    if nmld is not None and len(nmld) < _MIN_LEAF_DATA:
        return f"non-membership leaf data of {len(nmld)} bytes, min {_MIN_LEAF_DATA}"
    if p.sibling_data and side_nodes:
        for node in side_nodes:
            if len(node) != DIGEST_SIZE:
                return f"side node of {len(node)} bytes, want {DIGEST_SIZE}"
        if hash_preimage(p.sibling_data) != side_nodes[0]:
            return "sibling data does not hash to the first side node"
    return None


def _compact_proof_problem(p: CompactClosestProof) -> str | None:
    if len(p.path) != PATH_SIZE:
        return f"path is {len(p.path)} bytes, want {PATH_SIZE}"
    if len(p.depth) > _MAX_COMPACT_INT:
        return f"depth of {len(p.depth)} bytes, max {_MAX_COMPACT_INT}"
    for b in p.flipped_bits:
        if len(b) > _MAX_COMPACT_INT:
            return f"flipped bit of {len(b)} bytes, max {_MAX_COMPACT_INT}"
    inner = p.closest_proof
    n = inner.num_side_nodes
    if not 0 <= n <= MAX_DEPTH:
        return f"num_side_nodes {n} outside [0, {MAX_DEPTH}]"
    if len(inner.bit_mask) != (n + 7) // 8:
        return f"bit mask of {len(inner.bit_mask)} bytes for {n} side nodes"
    placeholders = sum(bin(b).count("1") for b in inner.bit_mask)
    if n > 0 and len(inner.side_nodes) != n - placeholders:
        return f"{len(inner.side_nodes)} side nodes, bit mask needs {n - placeholders}"
    return None


# --- verification (§9) ----------------------------------------------------------------------


def _root_arg(root: object) -> bytes:
    if not isinstance(root, bytes | bytearray | memoryview):
        raise TypeError(f"root must be bytes, got {type(root).__name__}")
    return bytes(root)


def verify_closest_proof(proof: ClosestProof, root: bytes) -> bool:
    """Go ``VerifyClosestProof(proof, root, NewSMSTSpec())``: True iff the proof folds to ``root``.

    Malformed proofs give False, never an exception.
    """
    if not isinstance(proof, ClosestProof):
        raise TypeError(f"proof must be a ClosestProof, got {type(proof).__name__}")
    root = _root_arg(root)
    if _closest_proof_problem(proof) is not None:
        return False
    cp = proof.closest_path
    if len(cp) < PATH_SIZE:
        return False
    leaf_path = cp[:PATH_SIZE]
    inner = proof.closest_proof
    value = proof.closest_value_hash
    if value:
        if len(value) < 16:
            return False  # Go panics slicing the sum
        member = len(value) > 16 or value[-16:-8] != bytes(8)
    else:
        member = False
    if member:
        assert value is not None
        current = hashlib.sha256(b"\x00" + leaf_path + value).digest() + value[-16:]
    elif inner.non_membership_leaf_data is None:
        current = PLACEHOLDER
    else:
        data = inner.non_membership_leaf_data
        if data[1 : 1 + PATH_SIZE] == leaf_path:
            return False  # non-membership proof on related leaf
        encoded = b"\x00" + data[1:]
        current = hashlib.sha256(encoded).digest() + encoded[-16:]
    n = len(inner.side_nodes)
    path_int = int.from_bytes(leaf_path, "big")
    for i, side in enumerate(inner.side_nodes):
        side = _normalise_side_node(side)
        if (path_int >> (255 - (n - 1 - i))) & 1:
            current = inner_digest(side, current)
        else:
            current = inner_digest(current, side)
    return current == root


def verify_compact_closest_proof(compact: CompactClosestProof, root: bytes) -> bool:
    """Go ``VerifyCompactClosestProof``: decompact (False if that fails), then verify."""
    if not isinstance(compact, CompactClosestProof):
        raise TypeError(f"proof must be a CompactClosestProof, got {type(compact).__name__}")
    root = _root_arg(root)
    try:
        proof = compact.decompact()
    except SMSTBadProofError:
        return False
    return verify_closest_proof(proof, root)


def proof_path(block_hash: bytes, session_id: str) -> bytes:
    """poktroll ``GetPathForProof``: ``sha256(block_hash || utf8(session_id))`` (§8.1)."""
    block_hash = as_bytes("block_hash", block_hash)
    if not isinstance(session_id, str):
        raise TypeError(f"session_id must be a str, got {type(session_id).__name__}")
    return hashlib.sha256(block_hash + session_id.encode("utf-8")).digest()
