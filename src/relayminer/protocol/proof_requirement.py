"""Does a claim need a proof? Claim pricing and poktroll's proof-requirement lottery.

Spec lifecycle.md §2.2-§2.5 and §6.3. The chain (and the miner, predicting it) decides:

1. ``claimed = floor(root_sum * difficulty_multiplier * CUTTM / GRAN)`` uPOKT, with the shared
   params and the relay difficulty at session START;
2. ``claimed >= proof_requirement_threshold`` → ``THRESHOLD``;
3. else the claim's sample value (a Go ``math/rand`` draw seeded by the claim and the hash of
   block ``proof_open - 1``) ``<= proof_request_probability`` → ``PROBABILISTIC``;
4. else ``NOT_REQUIRED``.

Spec §6.3 example: 10 relays of 10 CU at CUTTM 145,990 and base difficulty.

>>> p = SharedParams(compute_units_to_tokens_multiplier=145_990)
>>> claimed_upokt(100, p)
14
>>> claimed_upokt(100, p, b"\\x7f" + b"\\xff" * 31)  # harder target, multiplier ~2
29
>>> decide_proof_requirement(14, 0.5507040667020487, ProofParams(100, 0.01))
<ProofRequirementReason.NOT_REQUIRED: 0>
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from relayminer.errors import InvalidProtocolArgumentError
from relayminer.proto import poktroll_pb2
from relayminer.protocol.gorand import seeded_float64
from relayminer.protocol.relay_difficulty import (
    BASE_RELAY_DIFFICULTY_TARGET_HASH,
    difficulty_multiplier,
)
from relayminer.protocol.windows import SharedParams
from relayminer.validate import as_bytes, check_uint64

__all__ = [
    "SMST_ROOT_SIZE",
    "ClaimRoot",
    "ProofParams",
    "ProofRequirementReason",
    "build_claim",
    "claim_hash",
    "claim_sample",
    "claimed_upokt",
    "closest_proof_path",
    "decide_proof_requirement",
    "difficulty_multiplier",
    "encode_claim",
    "estimated_compute_units",
    "num_estimated_relays",
    "parse_claim_root",
    "proof_requirement",
    "root_count",
    "root_sum",
]

SMST_ROOT_SIZE: Final = 48
"""Size of a sealed SMST root: 32-byte digest || BE64 sum || BE64 count."""

_DIGEST_SIZE: Final = 32


class ProofRequirementReason(enum.IntEnum):
    """poktroll ``pocket.proof.ProofRequirementReason`` (same numbering as the chain's enum)."""

    NOT_REQUIRED = 0
    PROBABILISTIC = 1
    THRESHOLD = 2

    @property
    def is_required(self) -> bool:
        """True for ``PROBABILISTIC`` and ``THRESHOLD``.

        >>> ProofRequirementReason.THRESHOLD.is_required
        True
        """
        return self is not ProofRequirementReason.NOT_REQUIRED


@dataclass(frozen=True, slots=True)
class ProofParams:
    """poktroll ``x/proof`` params (read LIVE, spec §2.1); defaults are the code defaults.

    Amounts are uPOKT. ``proof_request_probability`` must lie in ``[0, 1]``, amounts ``>= 0``.

    >>> ProofParams().proof_request_probability
    0.25
    >>> ProofParams(proof_requirement_threshold_upokt=-1)
    Traceback (most recent call last):
    ...
    relayminer.errors.InvalidProtocolArgumentError: invalid \
proof_requirement_threshold_upokt: must be a uint64, got -1
    """

    proof_requirement_threshold_upokt: int = 20_000_000
    proof_request_probability: float = 0.25
    proof_missing_penalty_upokt: int = 320_000_000
    proof_submission_fee_upokt: int = 0

    def __post_init__(self) -> None:
        probability = self.proof_request_probability
        if isinstance(probability, bool) or not isinstance(probability, int | float):
            raise TypeError(
                f"proof_request_probability must be a float, got {type(probability).__name__}"
            )
        if math.isnan(probability) or not 0.0 <= probability <= 1.0:
            raise InvalidProtocolArgumentError(
                "proof_request_probability", f"must be within [0, 1], got {probability}"
            )
        for name in (
            "proof_requirement_threshold_upokt",
            "proof_missing_penalty_upokt",
            "proof_submission_fee_upokt",
        ):
            check_uint64(name, getattr(self, name))


# --------------------------------------------------------------------------------------------
# SMST root


@dataclass(frozen=True, slots=True)
class ClaimRoot:
    """A sealed SMST root split into its parts."""

    digest: bytes
    """32-byte trie digest."""
    sum: int
    """Total compute units of the tree (claimed CU)."""
    count: int
    """Number of leaves (relays)."""


def parse_claim_root(root_hash: bytes) -> ClaimRoot:
    """Split a 48-byte root ``digest || BE64 sum || BE64 count``.

    >>> root = parse_claim_root(b"\\x11" * 32 + (100).to_bytes(8, "big") + (10).to_bytes(8, "big"))
    >>> root.sum, root.count
    (100, 10)
    >>> parse_claim_root(b"\\x00" * 32)
    Traceback (most recent call last):
    ...
    relayminer.errors.InvalidProtocolArgumentError: invalid root_hash: must be 48 \
bytes (digest || BE64 sum || BE64 count), got 32
    """
    root = as_bytes("root_hash", root_hash)
    if len(root) != SMST_ROOT_SIZE:
        raise InvalidProtocolArgumentError(
            "root_hash",
            f"must be {SMST_ROOT_SIZE} bytes (digest || BE64 sum || BE64 count), got {len(root)}",
        )
    return ClaimRoot(
        digest=root[:_DIGEST_SIZE],
        sum=int.from_bytes(root[_DIGEST_SIZE : _DIGEST_SIZE + 8], "big"),
        count=int.from_bytes(root[_DIGEST_SIZE + 8 :], "big"),
    )


def root_sum(root_hash: bytes) -> int:
    """Claimed compute units of a 48-byte root (its BE64 sum)."""
    return parse_claim_root(root_hash).sum


def root_count(root_hash: bytes) -> int:
    """Number of relays of a 48-byte root (its BE64 count)."""
    return parse_claim_root(root_hash).count


# --------------------------------------------------------------------------------------------
# Pricing (spec §6.3)


def estimated_compute_units(
    claimed_compute_units: int, difficulty_target_hash: bytes = BASE_RELAY_DIFFICULTY_TARGET_HASH
) -> Fraction:
    """``claimed CU * difficulty multiplier``, exact.

    >>> estimated_compute_units(100)
    Fraction(100, 1)
    """
    claimed = check_uint64("claimed_compute_units", claimed_compute_units)
    return claimed * difficulty_multiplier(difficulty_target_hash)


def claimed_upokt(
    claimed_compute_units: int,
    shared_params: SharedParams,
    difficulty_target_hash: bytes = BASE_RELAY_DIFFICULTY_TARGET_HASH,
) -> int:
    """``floor(estimated CU * CUTTM / GRAN)`` uPOKT (poktroll ``GetClaimeduPOKT``).

    Pass the shared params and the difficulty target at session START.

    >>> claimed_upokt(685, SharedParams(compute_units_to_tokens_multiplier=145_990))
    100
    """
    estimated = estimated_compute_units(claimed_compute_units, difficulty_target_hash)
    price = Fraction(
        shared_params.compute_units_to_tokens_multiplier,
        shared_params.compute_unit_cost_granularity,
    )
    return math.floor(estimated * price)


def num_estimated_relays(
    num_relays: int,
    claimed_compute_units: int,
    difficulty_target_hash: bytes = BASE_RELAY_DIFFICULTY_TARGET_HASH,
) -> int:
    """``floor(estimated CU) div (claimed CU div num_relays)``; 0 if any divisor is 0.

    >>> num_estimated_relays(10, 100), num_estimated_relays(10, 100, b"\\x7f" + b"\\xff" * 31)
    (10, 20)
    """
    relays = check_uint64("num_relays", num_relays)
    claimed = check_uint64("claimed_compute_units", claimed_compute_units)
    if relays == 0 or claimed == 0:
        return 0
    compute_units_per_relay = claimed // relays
    if compute_units_per_relay == 0:
        return 0
    estimated = math.floor(estimated_compute_units(claimed, difficulty_target_hash))
    return estimated // compute_units_per_relay


# --------------------------------------------------------------------------------------------
# The claim and its sample value (spec §2.3)


def build_claim(
    *,
    supplier_operator_address: str,
    application_address: str,
    service_id: str,
    session_id: str,
    session_start_block_height: int,
    session_end_block_height: int,
    root_hash: bytes,
    proof_validation_status: int = poktroll_pb2.PENDING_VALIDATION,
) -> poktroll_pb2.Claim:
    """The ``pocket.proof.Claim`` message the chain stores (status unset by default)."""
    if proof_validation_status not in poktroll_pb2.ClaimProofStatus.values():
        raise InvalidProtocolArgumentError(
            "proof_validation_status", f"unknown ClaimProofStatus {proof_validation_status!r}"
        )
    return poktroll_pb2.Claim(
        supplier_operator_address=supplier_operator_address,
        session_header=poktroll_pb2.SessionHeader(
            application_address=application_address,
            service_id=service_id,
            session_id=session_id,
            session_start_block_height=session_start_block_height,
            session_end_block_height=session_end_block_height,
        ),
        root_hash=as_bytes("root_hash", root_hash),
        proof_validation_status=poktroll_pb2.ClaimProofStatus.Name(proof_validation_status),
    )


def encode_claim(claim: poktroll_pb2.Claim) -> bytes:
    """Deterministic protobuf bytes of a claim (= gogoproto stable marshal: tag order, no
    default-valued fields)."""
    if not isinstance(claim, poktroll_pb2.Claim):
        raise TypeError(f"claim must be a pocket.proof.Claim, got {type(claim).__name__}")
    return claim.SerializeToString(deterministic=True)


def claim_hash(claim_bytes: bytes) -> bytes:
    """``SHA-256`` of the encoded claim."""
    return hashlib.sha256(as_bytes("claim_bytes", claim_bytes)).digest()


def claim_sample(claim_bytes: bytes, seed_block_hash: bytes) -> float:
    """The claim's proof-requirement sample value in ``[0, 1)``.

    ``seed = binary.Varint(SHA-256(SHA-256(claim_bytes) || seed_block_hash))`` and the sample
    is the first Go ``Float64()`` of ``rand.NewSource(seed)`` (poktroll
    ``GetProofRequirementSampleValue``). ``seed_block_hash`` is the hash of block
    ``proof_seed_height`` (= proof window open - 1).
    """
    seed_hash = as_bytes("seed_block_hash", seed_block_hash)
    return seeded_float64(claim_hash(claim_bytes), seed_hash)


def closest_proof_path(seed_block_hash: bytes, session_id: str) -> bytes:
    """Path of the closest proof: ``SHA-256(seed_block_hash || utf8(session_id))`` (§2.5).

    Same definition as the SMST ``proof_path`` of API.md; kept here because the proof
    requirement and the path are seeded by the same block.

    >>> closest_proof_path(b"\\xab" * 32, "session-123").hex()[:8]
    '903fa382'
    """
    if not isinstance(session_id, str):
        raise TypeError(f"session_id must be a str, got {type(session_id).__name__}")
    block_hash = as_bytes("seed_block_hash", seed_block_hash)
    return hashlib.sha256(block_hash + session_id.encode("utf-8")).digest()


# --------------------------------------------------------------------------------------------
# The decision (spec §2.2)


def decide_proof_requirement(
    claimed_upokt_amount: int,
    sample: float | Callable[[], float],
    proof_params: ProofParams,
) -> ProofRequirementReason:
    """Threshold first, then the lottery: ``sample <= probability`` → ``PROBABILISTIC``.

    ``sample`` may be a zero-argument callable; it is only called when the threshold does not
    already require a proof (the chain computes the sample lazily too).

    >>> decide_proof_requirement(100, 0.9, ProofParams(100, 0.01)).name
    'THRESHOLD'
    >>> decide_proof_requirement(99, 0.01, ProofParams(100, 0.01)).name
    'PROBABILISTIC'
    """
    amount = check_uint64("claimed_upokt_amount", claimed_upokt_amount)
    if amount >= proof_params.proof_requirement_threshold_upokt:
        return ProofRequirementReason.THRESHOLD
    value = sample() if callable(sample) else sample
    if value <= proof_params.proof_request_probability:
        return ProofRequirementReason.PROBABILISTIC
    return ProofRequirementReason.NOT_REQUIRED


def proof_requirement(
    claim: poktroll_pb2.Claim,
    proof_params: ProofParams,
    shared_params_at_start: SharedParams,
    difficulty_target_hash: bytes,
    seed_block_hash: bytes,
) -> ProofRequirementReason:
    """poktroll ``ProofRequirementForClaim`` for a claim message.

    ``shared_params_at_start`` / ``difficulty_target_hash``: values at the session START
    height; ``proof_params``: live; ``seed_block_hash``: hash of block
    :func:`relayminer.protocol.windows.proof_seed_height` (params at session end).
    """
    root = parse_claim_root(claim.root_hash)
    amount = claimed_upokt(root.sum, shared_params_at_start, difficulty_target_hash)
    return decide_proof_requirement(
        amount, lambda: claim_sample(encode_claim(claim), seed_block_hash), proof_params
    )
