"""Go gob bytes of the compact closest proof, and robustness of decoding and verification."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayminer.errors import RelayMinerError
from relayminer.smst.gob import (
    PREFIX,
    GobCompactClosestProof,
    GobCompactMerkleProof,
    GobDecodeError,
    decode_compact_closest_proof,
    encode_compact_closest_proof,
    encode_int,
    encode_uint,
)
from relayminer.smst.proof import (
    ClosestProof,
    CompactClosestProof,
    CompactMerkleProof,
    MerkleProof,
    SMSTBadProofError,
    verify_closest_proof,
    verify_compact_closest_proof,
)

from .support import build, h, sha
from .support import vectors as V

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_prefix_is_the_spec_constant() -> None:
    assert len(PREFIX) == 286
    spec_gob = h(V()["empty_tree"]["closest_proof"]["compact_proof_gob_hex"])
    assert spec_gob.startswith(PREFIX)
    assert PREFIX[:3] == bytes.fromhex("ff877f")  # msg1: 137 bytes, type id -64


@pytest.mark.parametrize(
    ("n", "hexed"),
    [(0, "00"), (1, "01"), (127, "7f"), (128, "ff80"), (200, "ffc8"), (660, "fe0294"),
     (2**64 - 1, "f8ffffffffffffffff")],
)  # fmt: skip
def test_gob_uint(n: int, hexed: str) -> None:
    assert encode_uint(n).hex() == hexed


@pytest.mark.parametrize(
    ("x", "hexed"), [(0, "00"), (1, "02"), (10, "14"), (64, "ff80"), (-64, "7f"), (-1, "01")]
)
def test_gob_int(x: int, hexed: str) -> None:
    assert encode_int(x).hex() == hexed


@pytest.mark.parametrize("n", [-1, 2**64])
def test_gob_uint_range(n: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        encode_uint(n)


def test_worked_example_two_leaves() -> None:
    """Spec §11.3: the bytes after PREFIX for two_leaves_a_b / sha256("path-0")."""
    trie = build([(sha(b"a"), b"value-a", 1), (sha(b"b"), b"value-b", 2)])
    blob = trie.prove_closest(sha(b"path-0")).compact().to_bytes()
    body = blob[len(PREFIX) :]
    assert body[:4] == bytes.fromhex("ffd7ff80")
    assert len(body) == 2 + 0xD7
    assert body[4:6] == bytes.fromhex("0120")  # field 0: Path, 32 bytes
    assert body[38:41] == bytes.fromhex("020101")  # field 2 (delta 2): Depth = 01
    assert body[-2:] == b"\x00\x00"


optional_bytes = st.one_of(st.none(), st.binary(min_size=1, max_size=60))
wire_inner = st.builds(
    GobCompactMerkleProof,
    st.lists(st.binary(max_size=60), max_size=5).map(tuple),
    optional_bytes,
    st.binary(max_size=5),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    optional_bytes,
)
wire = st.builds(
    GobCompactClosestProof,
    st.binary(max_size=40),
    st.lists(st.binary(max_size=3), max_size=5).map(tuple),
    st.binary(max_size=3),
    st.binary(max_size=50),
    optional_bytes,
    wire_inner,
)


@SETTINGS
@given(w=wire)
def test_gob_round_trip(w: GobCompactClosestProof) -> None:
    data = encode_compact_closest_proof(w)
    assert data.startswith(PREFIX)
    assert decode_compact_closest_proof(data) == w


@SETTINGS
@given(w=wire, cut=st.integers(min_value=0, max_value=10_000))
def test_truncated_streams_are_rejected(w: GobCompactClosestProof, cut: int) -> None:
    data = encode_compact_closest_proof(w)
    short = data[: cut % len(data)]
    with pytest.raises(GobDecodeError) as info:
        decode_compact_closest_proof(short)
    assert isinstance(info.value, RelayMinerError) and isinstance(info.value, ValueError)


@SETTINGS
@given(garbage=st.binary(max_size=300), with_prefix=st.booleans())
def test_garbage_raises_only_gob_decode_error(garbage: bytes, with_prefix: bool) -> None:
    data = PREFIX + garbage if with_prefix else garbage
    with contextlib.suppress(GobDecodeError):
        CompactClosestProof.from_bytes(data)


@SETTINGS
@given(w=wire, pos=st.integers(min_value=0, max_value=10_000), byte=st.integers(0, 255))
def test_corrupted_streams_never_crash(w: GobCompactClosestProof, pos: int, byte: int) -> None:
    data = bytearray(encode_compact_closest_proof(w))
    i = len(PREFIX) + pos % (len(data) - len(PREFIX))
    data[i] = byte
    try:
        proof = CompactClosestProof.from_bytes(bytes(data))
    except GobDecodeError:
        return
    assert verify_compact_closest_proof(proof, bytes(48)) in (True, False)


def test_decoder_rejections() -> None:
    good = encode_compact_closest_proof(
        GobCompactClosestProof(
            b"p" * 32,
            (b"\x00",),
            b"\x00",
            bytes(48),
            None,
            GobCompactMerkleProof((), None, b"", 0, None),
        )
    )
    with pytest.raises(GobDecodeError, match="type definitions"):
        decode_compact_closest_proof(good[1:])
    with pytest.raises(GobDecodeError, match="message length"):
        decode_compact_closest_proof(good + b"\x00")
    body = good[len(PREFIX) :]
    other_type = PREFIX + bytes([body[0]]) + encode_int(65) + body[3:]
    with pytest.raises(GobDecodeError, match="type id 65"):
        decode_compact_closest_proof(other_type)
    # A field number past the struct's last field.
    bad_field = PREFIX + bytes([5]) + encode_int(64) + b"\x07\x00\x00"
    with pytest.raises(GobDecodeError, match="field number 6 out of range"):
        decode_compact_closest_proof(bad_field)
    # ClosestProof absent.
    no_inner = PREFIX + bytes([3]) + encode_int(64) + b"\x00"
    with pytest.raises(GobDecodeError, match="ClosestProof is missing"):
        decode_compact_closest_proof(no_inner)
    # An integer wider than 8 bytes.
    wide = PREFIX + bytes([3]) + encode_int(64) + b"\xf7"
    with pytest.raises(GobDecodeError, match="out of range"):
        decode_compact_closest_proof(wide)
    with pytest.raises(TypeError):
        decode_compact_closest_proof("text")  # type: ignore[arg-type]


# --- verification never raises --------------------------------------------------------------

any_bytes = st.binary(max_size=120)
full_proofs = st.builds(
    ClosestProof,
    st.one_of(st.binary(min_size=32, max_size=32), any_bytes),
    st.lists(st.integers(min_value=-5, max_value=300), max_size=4).map(tuple),
    st.integers(min_value=-5, max_value=300),
    st.one_of(st.binary(min_size=32, max_size=48), any_bytes),
    st.one_of(st.none(), any_bytes),
    st.builds(
        MerkleProof,
        st.lists(st.one_of(st.binary(min_size=48, max_size=48), any_bytes), max_size=4).map(tuple),
        st.one_of(st.none(), any_bytes),
        st.one_of(st.none(), any_bytes, st.just(b"\x02" + bytes(98))),
    ),
)
compact_proofs = st.builds(
    CompactClosestProof,
    st.one_of(st.binary(min_size=32, max_size=32), any_bytes),
    st.lists(st.binary(max_size=3), max_size=4).map(tuple),
    st.binary(max_size=3),
    any_bytes,
    st.one_of(st.none(), any_bytes),
    st.builds(
        CompactMerkleProof,
        st.lists(any_bytes, max_size=4).map(tuple),
        st.one_of(st.none(), any_bytes),
        st.binary(max_size=3),
        st.integers(min_value=-3, max_value=300),
        st.one_of(st.none(), any_bytes),
    ),
)


@SETTINGS
@given(proof=full_proofs, root=st.binary(max_size=60))
def test_verify_never_raises(proof: ClosestProof, root: bytes) -> None:
    assert verify_closest_proof(proof, root) in (True, False)
    try:
        compact = proof.compact()
    except SMSTBadProofError:
        return
    assert verify_compact_closest_proof(compact, root) in (True, False)
    assert CompactClosestProof.from_bytes(compact.to_bytes()) == compact


@SETTINGS
@given(compact=compact_proofs, root=st.binary(max_size=60))
def test_verify_compact_never_raises(compact: CompactClosestProof, root: bytes) -> None:
    assert verify_compact_closest_proof(compact, root) in (True, False)


def test_verify_argument_types() -> None:
    trie = build([(sha(b"a"), b"value-a", 1)])
    proof = trie.prove_closest(sha(b"x"))
    assert verify_closest_proof(proof, trie.root())
    assert verify_closest_proof(proof, bytearray(trie.root()))
    with pytest.raises(TypeError):
        verify_closest_proof(proof, trie.root().hex())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify_closest_proof(proof.compact(), trie.root())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify_compact_closest_proof(proof, trie.root())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ClosestProof("p", (), 0, b"", None, MerkleProof())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        MerkleProof(side_nodes=b"abc")  # type: ignore[arg-type]


def test_compaction_checks() -> None:
    trie = build([(sha(b"a"), b"value-a", 1), (sha(b"b"), b"value-b", 2)])
    proof = trie.prove_closest(sha(b"path-0"))
    bad = ClosestProof(
        proof.path[:31],
        proof.flipped_bits,
        proof.depth,
        proof.closest_path,
        proof.closest_value_hash,
        proof.closest_proof,
    )
    with pytest.raises(SMSTBadProofError, match="path is 31 bytes"):
        bad.compact()
    compact = proof.compact()
    broken = CompactClosestProof(
        compact.path,
        compact.flipped_bits,
        compact.depth,
        compact.closest_path,
        compact.closest_value_hash,
        CompactMerkleProof((), None, compact.closest_proof.bit_mask, 1, None),
    )
    with pytest.raises(SMSTBadProofError, match="side nodes, bit mask needs 1"):
        broken.decompact()
    assert verify_compact_closest_proof(broken, trie.root()) is False
    deep = CompactClosestProof(
        compact.path, (), b"\x01\x00\x00", compact.closest_path, None, compact.closest_proof
    )
    with pytest.raises(SMSTBadProofError, match="depth of 3 bytes"):
        deep.decompact()
