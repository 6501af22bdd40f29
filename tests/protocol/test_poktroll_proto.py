"""The poktroll messages the miner encodes: spec lifecycle.md §2.3 and §6.1."""

from __future__ import annotations

from relayminer.proto import mined_relay_pb2, poktroll_pb2
from relayminer.protocol.proof_requirement import build_claim, encode_claim

HEADER = poktroll_pb2.SessionHeader(
    application_address="pokt1app",
    service_id="svc",
    session_id="sess",
    session_start_block_height=1,
    session_end_block_height=10,
)


def test_full_names_give_the_chain_type_urls() -> None:
    assert poktroll_pb2.MsgCreateClaim.DESCRIPTOR.full_name == "pocket.proof.MsgCreateClaim"
    assert poktroll_pb2.MsgSubmitProof.DESCRIPTOR.full_name == "pocket.proof.MsgSubmitProof"
    assert poktroll_pb2.Claim.DESCRIPTOR.full_name == "pocket.proof.Claim"


def test_coexists_with_the_relay_transport_proto() -> None:
    assert mined_relay_pb2.MinedRelayMessage.DESCRIPTOR.full_name == "pocket.ha.MinedRelayMessage"


def test_field_numbers() -> None:
    def numbers(message: type) -> dict[str, int]:
        return {f.name: f.number for f in message.DESCRIPTOR.fields}  # type: ignore[attr-defined]

    assert numbers(poktroll_pb2.SessionHeader) == {
        "application_address": 1,
        "service_id": 2,
        "session_id": 3,
        "session_start_block_height": 4,
        "session_end_block_height": 5,
    }
    assert numbers(poktroll_pb2.Claim) == {
        "supplier_operator_address": 1,
        "session_header": 2,
        "root_hash": 3,
        "proof_validation_status": 4,
    }
    assert numbers(poktroll_pb2.MsgCreateClaim) == {
        "supplier_operator_address": 1,
        "session_header": 2,
        "root_hash": 3,
    }
    assert numbers(poktroll_pb2.MsgSubmitProof) == {
        "supplier_operator_address": 1,
        "session_header": 2,
        "proof": 3,
    }
    assert dict(poktroll_pb2.ClaimProofStatus.items()) == {
        "PENDING_VALIDATION": 0,
        "VALIDATED": 1,
        "INVALID": 2,
    }


def test_unproven_claim_encodes_like_its_create_claim_message() -> None:
    root = b"\x22" * 48
    msg = poktroll_pb2.MsgCreateClaim(
        supplier_operator_address="pokt1supplier", session_header=HEADER, root_hash=root
    )
    claim = build_claim(
        supplier_operator_address="pokt1supplier",
        application_address="pokt1app",
        service_id="svc",
        session_id="sess",
        session_start_block_height=1,
        session_end_block_height=10,
        root_hash=root,
    )
    assert encode_claim(claim) == msg.SerializeToString(deterministic=True)
    decoded = poktroll_pb2.Claim.FromString(encode_claim(claim))
    assert decoded == claim


def test_submit_proof_round_trip() -> None:
    msg = poktroll_pb2.MsgSubmitProof(
        supplier_operator_address="pokt1supplier", session_header=HEADER, proof=b"\x01\x02"
    )
    data = msg.SerializeToString(deterministic=True)
    assert data.startswith(b"\x0a\x0dpokt1supplier\x12")
    assert data.endswith(b"\x1a\x02\x01\x02")
    assert poktroll_pb2.MsgSubmitProof.FromString(data) == msg
