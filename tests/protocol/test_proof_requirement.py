"""Proof requirement, claim sample and reward arithmetic: spec lifecycle.md §2 and §6.3."""

from __future__ import annotations

import hashlib
import math
from fractions import Fraction

import pytest

from relayminer.errors import InvalidProtocolArgumentError, RelayMinerError
from relayminer.proto import poktroll_pb2
from relayminer.protocol.gorand import go_varint_n
from relayminer.protocol.proof_requirement import (
    SMST_ROOT_SIZE,
    ClaimRoot,
    ProofParams,
    ProofRequirementReason,
    build_claim,
    claim_hash,
    claim_sample,
    claimed_upokt,
    closest_proof_path,
    decide_proof_requirement,
    difficulty_multiplier,
    encode_claim,
    estimated_compute_units,
    num_estimated_relays,
    parse_claim_root,
    proof_requirement,
    root_count,
    root_sum,
)
from relayminer.protocol.relay_difficulty import BASE_RELAY_DIFFICULTY_TARGET_HASH
from relayminer.protocol.windows import SharedParams

VECTOR_ROOT = b"\x11" * 32 + (100).to_bytes(8, "big") + (10).to_bytes(8, "big")
VECTOR_CLAIM_PREFIX = bytes.fromhex(
    "0a0d706f6b7431737570706c69657212190a08706f6b743161707012037376631a04736573732001280a1a30"
)
SEED_BLOCK = b"\xab" * 32
HALF_TARGET = b"\x7f" + b"\xff" * 31  # max_hash // 2
MAINNET_PRICE = SharedParams(compute_units_to_tokens_multiplier=145_990)
MAINNET_PROOF = ProofParams(
    proof_requirement_threshold_upokt=100,
    proof_request_probability=0.01,
    proof_missing_penalty_upokt=1,
    proof_submission_fee_upokt=1,
)


def vector_claim(**overrides: object) -> poktroll_pb2.Claim:
    fields: dict[str, object] = {
        "supplier_operator_address": "pokt1supplier",
        "application_address": "pokt1app",
        "service_id": "svc",
        "session_id": "sess",
        "session_start_block_height": 1,
        "session_end_block_height": 10,
        "root_hash": VECTOR_ROOT,
    }
    fields.update(overrides)
    return build_claim(**fields)  # type: ignore[arg-type]


def root(sum_cu: int, count: int, digest: bytes = b"\x00" * 32) -> bytes:
    return digest + sum_cu.to_bytes(8, "big") + count.to_bytes(8, "big")


# ----------------------------------------------------------------------------- §2.3 vector


def test_claim_vector_encoding() -> None:
    encoded = encode_claim(vector_claim())
    assert encoded == VECTOR_CLAIM_PREFIX + VECTOR_ROOT


def test_claim_vector_hash_seed_and_sample() -> None:
    encoded = encode_claim(vector_claim())
    digest = claim_hash(encoded)
    assert digest.hex().startswith("5f92314f")
    assert digest.hex().endswith("dc5f6a80")
    seed_hash = hashlib.sha256(digest + SEED_BLOCK).digest()
    assert seed_hash.hex().startswith("edf13365")
    assert seed_hash.hex().endswith("05820eb9")
    assert go_varint_n(seed_hash) == (-425079, 3)
    assert claim_sample(encoded, SEED_BLOCK) == 0.5507040667020487


def test_validated_status_changes_the_encoding_and_sample() -> None:
    pending = encode_claim(vector_claim())
    validated = encode_claim(vector_claim(proof_validation_status=poktroll_pb2.VALIDATED))
    assert validated == pending + b"\x20\x01"  # field 4 varint 1; status 0 is omitted
    assert claim_sample(validated, SEED_BLOCK) != claim_sample(pending, SEED_BLOCK)


def test_claim_sample_depends_on_seed_block() -> None:
    encoded = encode_claim(vector_claim())
    samples = {claim_sample(encoded, bytes([i]) * 32) for i in range(20)}
    assert len(samples) == 20
    assert all(0.0 <= s < 1.0 for s in samples)


def test_build_claim_rejects_unknown_status() -> None:
    with pytest.raises(InvalidProtocolArgumentError) as info:
        vector_claim(proof_validation_status=7)
    assert info.value.argument == "proof_validation_status"


def test_encode_claim_type_error() -> None:
    with pytest.raises(TypeError):
        encode_claim(poktroll_pb2.MsgCreateClaim())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        claim_sample("claim", SEED_BLOCK)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        claim_sample(b"claim", None)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- §2.5 path


def test_proof_path_vector() -> None:
    assert closest_proof_path(SEED_BLOCK, "session-123").hex() == (
        "903fa38295bdef92eef3540617f351e80f80482f12d2e2cfded063be8e8c8445"
    )


def test_proof_path_type_errors() -> None:
    with pytest.raises(TypeError):
        closest_proof_path(SEED_BLOCK, b"session-123")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        closest_proof_path("ab", "session-123")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- root


def test_parse_claim_root() -> None:
    parsed = parse_claim_root(VECTOR_ROOT)
    assert parsed == ClaimRoot(digest=b"\x11" * 32, sum=100, count=10)
    assert root_sum(VECTOR_ROOT) == 100
    assert root_count(VECTOR_ROOT) == 10
    assert parse_claim_root(bytearray(root(2**64 - 1, 2**64 - 1))).sum == 2**64 - 1  # type: ignore[arg-type]


@pytest.mark.parametrize("length", [0, 32, 40, 47, 49, 64])
def test_root_must_be_48_bytes(length: int) -> None:
    assert SMST_ROOT_SIZE == 48
    for fn in (parse_claim_root, root_sum, root_count):
        with pytest.raises(InvalidProtocolArgumentError) as info:
            fn(b"\x00" * length)
        assert info.value.argument == "root_hash"
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, RelayMinerError)


def test_root_type_error() -> None:
    with pytest.raises(TypeError):
        parse_claim_root("00" * 48)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- §6.3 pricing


def test_reward_example_base_difficulty() -> None:
    # 10 relays, CUPR 10 -> 100 CU; CUTTM 145,990 -> floor(100 * 0.14599) = 14 uPOKT.
    assert claimed_upokt(100, MAINNET_PRICE) == 14
    assert claimed_upokt(100, MAINNET_PRICE, BASE_RELAY_DIFFICULTY_TARGET_HASH) == 14
    assert estimated_compute_units(100) == 100
    assert num_estimated_relays(10, 100) == 10


def test_reward_example_half_target() -> None:
    # Target = half of max -> multiplier 2 (exactly (2^256-1)/(2^255-1)) -> 29 uPOKT.
    multiplier = difficulty_multiplier(HALF_TARGET)
    assert multiplier == Fraction(2**256 - 1, 2**255 - 1)
    assert math.floor(multiplier) == 2
    assert multiplier - 2 < Fraction(1, 2**250)
    assert claimed_upokt(100, MAINNET_PRICE, HALF_TARGET) == 29
    assert num_estimated_relays(10, 100, HALF_TARGET) == 20


def test_multiplier_of_base_target_is_exactly_one() -> None:
    assert difficulty_multiplier(BASE_RELAY_DIFFICULTY_TARGET_HASH) == Fraction(1)
    assert difficulty_multiplier(b"\x00" * 31 + b"\x01") == 2**256 - 1


def test_pricing_is_exact_rational() -> None:
    # A float computation of 3 * 1/3 style prices would be off by one after flooring.
    p = SharedParams(compute_units_to_tokens_multiplier=1, compute_unit_cost_granularity=3)
    assert claimed_upokt(3, p) == 1
    assert claimed_upokt(2, p) == 0
    p = SharedParams(compute_units_to_tokens_multiplier=29, compute_unit_cost_granularity=100)
    assert claimed_upokt(100, p) == 29  # 0.29 * 100 = 28.999999999999996 in floats


def test_mainnet_threshold_boundary() -> None:
    # §2.2: THRESHOLD once estimated CU x CUTTM/GRAN >= 100, e.g. >= 685 CU at CUTTM 145,990.
    assert claimed_upokt(684, MAINNET_PRICE) == 99
    assert claimed_upokt(685, MAINNET_PRICE) == 100


def test_default_price() -> None:
    assert claimed_upokt(100, SharedParams()) == 4_200  # 42 uPOKT per CU


@pytest.mark.parametrize(
    ("relays", "cu", "expected"),
    [(0, 100, 0), (10, 0, 0), (10, 5, 0), (3, 10, 3), (10, 105, 10)],
)
def test_num_estimated_relays_edge_cases(relays: int, cu: int, expected: int) -> None:
    assert num_estimated_relays(relays, cu) == expected


def test_pricing_argument_errors() -> None:
    with pytest.raises(InvalidProtocolArgumentError) as info:
        claimed_upokt(-1, SharedParams())
    assert info.value.argument == "claimed_compute_units"
    with pytest.raises(InvalidProtocolArgumentError) as info:
        claimed_upokt(1, SharedParams(), b"\x00" * 32)
    assert info.value.argument == "target_hash"
    with pytest.raises(TypeError):
        claimed_upokt(1.5, SharedParams())  # type: ignore[arg-type]
    with pytest.raises(InvalidProtocolArgumentError):
        num_estimated_relays(-1, 10)


# ----------------------------------------------------------------------------- decision


def test_reason_numbering_matches_poktroll() -> None:
    assert [(r.name, int(r)) for r in ProofRequirementReason] == [
        ("NOT_REQUIRED", 0),
        ("PROBABILISTIC", 1),
        ("THRESHOLD", 2),
    ]
    assert not ProofRequirementReason.NOT_REQUIRED.is_required
    assert ProofRequirementReason.PROBABILISTIC.is_required
    assert ProofRequirementReason.THRESHOLD.is_required


def test_default_proof_params() -> None:
    p = ProofParams()
    assert p.proof_request_probability == 0.25
    assert p.proof_requirement_threshold_upokt == 20_000_000
    assert p.proof_missing_penalty_upokt == 320_000_000
    assert p.proof_submission_fee_upokt == 0


@pytest.mark.parametrize(
    ("amount", "sample", "expected"),
    [
        (100, 0.99, ProofRequirementReason.THRESHOLD),  # claimed == threshold
        (10**9, 0.0, ProofRequirementReason.THRESHOLD),  # threshold wins over the lottery
        (99, 0.01, ProofRequirementReason.PROBABILISTIC),  # sample == probability
        (99, 0.0, ProofRequirementReason.PROBABILISTIC),
        (99, 0.010000000000000002, ProofRequirementReason.NOT_REQUIRED),
        (0, 0.5, ProofRequirementReason.NOT_REQUIRED),
    ],
)
def test_decide_proof_requirement(
    amount: int, sample: float, expected: ProofRequirementReason
) -> None:
    assert decide_proof_requirement(amount, sample, MAINNET_PROOF) is expected


def test_sample_is_not_computed_when_threshold_requires_proof() -> None:
    def boom() -> float:
        raise AssertionError("sample must not be computed")

    assert decide_proof_requirement(100, boom, MAINNET_PROOF) is ProofRequirementReason.THRESHOLD
    assert decide_proof_requirement(1, lambda: 0.001, MAINNET_PROOF).name == "PROBABILISTIC"


def test_proof_requirement_for_the_vector_claim() -> None:
    claim = vector_claim()
    base = BASE_RELAY_DIFFICULTY_TARGET_HASH
    # Default params: 4,200 uPOKT < 20,000,000 and sample 0.5507 > 0.25.
    reason = proof_requirement(claim, ProofParams(), SharedParams(), base, SEED_BLOCK)
    assert reason is ProofRequirementReason.NOT_REQUIRED
    # The lottery is won when the probability reaches the sample.
    lucky = ProofParams(proof_request_probability=0.5507040667020487)
    assert proof_requirement(claim, lucky, SharedParams(), base, SEED_BLOCK).name == "PROBABILISTIC"
    # Mainnet pricing: 14 uPOKT < 100 and sample > 0.01.
    assert proof_requirement(claim, MAINNET_PROOF, MAINNET_PRICE, base, SEED_BLOCK).name == (
        "NOT_REQUIRED"
    )
    # Threshold reached through the difficulty multiplier: 2 x 4,200 >= 8,400.
    threshold = ProofParams(proof_requirement_threshold_upokt=8_400)
    assert proof_requirement(claim, threshold, SharedParams(), base, SEED_BLOCK).name == (
        "NOT_REQUIRED"
    )
    assert proof_requirement(claim, threshold, SharedParams(), HALF_TARGET, SEED_BLOCK).name == (
        "THRESHOLD"
    )


def test_proof_requirement_rejects_bad_root() -> None:
    claim = vector_claim(root_hash=b"\x00" * 47)
    with pytest.raises(InvalidProtocolArgumentError) as info:
        proof_requirement(
            claim, ProofParams(), SharedParams(), BASE_RELAY_DIFFICULTY_TARGET_HASH, SEED_BLOCK
        )
    assert info.value.argument == "root_hash"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"proof_request_probability": -0.1}, "proof_request_probability"),
        ({"proof_request_probability": 1.5}, "proof_request_probability"),
        ({"proof_request_probability": float("nan")}, "proof_request_probability"),
        ({"proof_requirement_threshold_upokt": -1}, "proof_requirement_threshold_upokt"),
        ({"proof_missing_penalty_upokt": 2**64}, "proof_missing_penalty_upokt"),
        ({"proof_submission_fee_upokt": -5}, "proof_submission_fee_upokt"),
    ],
)
def test_invalid_proof_params_name_the_field(overrides: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidProtocolArgumentError) as info:
        ProofParams(**overrides)  # type: ignore[arg-type]
    assert info.value.argument == field


@pytest.mark.parametrize(
    "overrides",
    [
        {"proof_request_probability": "0.25"},
        {"proof_request_probability": True},
        {"proof_requirement_threshold_upokt": 1.0},
    ],
)
def test_proof_params_types(overrides: dict[str, object]) -> None:
    with pytest.raises(TypeError):
        ProofParams(**overrides)  # type: ignore[arg-type]


def test_probability_bounds_are_inclusive() -> None:
    assert ProofParams(proof_request_probability=0).proof_request_probability == 0
    assert ProofParams(proof_request_probability=1.0).proof_request_probability == 1.0
