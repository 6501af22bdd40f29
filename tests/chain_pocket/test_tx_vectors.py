"""Every case of shared/vectors/pocket_tx_vectors.json (signed by cosmjs 0.39), byte for byte."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import timestamp_pb2

from relayminer import MsgCreateClaim, MsgSubmitProof, PocketKey, SessionHeader, sign_tx, tx_hash
from relayminer.proto import cosmos_tx_pb2

VECTORS_PATH = Path(__file__).with_name("pocket_tx_vectors.json")
VECTORS_SHA256 = "f39418635c8031fa8474a9ac4d79ed9061d7ff3dd6a93ced1c5c6400f1d76d83"
CASES: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text())["cases"]


def test_vectors_file_is_pinned() -> None:
    assert hashlib.sha256(VECTORS_PATH.read_bytes()).hexdigest() == VECTORS_SHA256


def _key(case: dict[str, Any]) -> PocketKey:
    if case.get("mnemonic"):
        return PocketKey.from_mnemonic(case["mnemonic"])
    return PocketKey.from_hex(case["private_key_hex"])


def _message(m: dict[str, Any]) -> MsgCreateClaim | MsgSubmitProof:
    header = SessionHeader(**m["session_header"])
    if m["type"] == "claim":
        return MsgCreateClaim(
            supplier_operator_address=m["supplier_operator_address"],
            session_header=header,
            root_hash=bytes.fromhex(m["root_hash_hex"]),
        )
    assert m["type"] == "proof"
    return MsgSubmitProof(
        supplier_operator_address=m["supplier_operator_address"],
        session_header=header,
        proof=bytes.fromhex(m["proof_hex"]),
    )


def _timeout(case: dict[str, Any]) -> timestamp_pb2.Timestamp | None:
    ts = case["timeout_timestamp"]
    return None if ts is None else timestamp_pb2.Timestamp(**ts)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_key_and_address(case: dict[str, Any]) -> None:
    key = _key(case)
    assert key.public_key.hex() == case["public_key_hex"]
    assert key.address() == case["address"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_signed_tx_is_byte_exact(case: dict[str, Any]) -> None:
    key = _key(case)
    raw = sign_tx(
        key,
        [_message(m) for m in case["messages"]],
        chain_id=case["chain_id"],
        account_number=case["account_number"],
        sequence=case["sequence"],
        gas_limit=case["gas_limit"],
        fee_upokt=case["fee_upokt"],
        memo=case["memo"],
        timeout_timestamp=_timeout(case),
        unordered=case["unordered"],
    )
    decoded = cosmos_tx_pb2.TxRaw.FromString(raw)
    assert decoded.body_bytes.hex() == case["body_bytes_hex"]
    assert decoded.auth_info_bytes.hex() == case["auth_info_bytes_hex"]
    assert key.sign(bytes.fromhex(case["sign_doc_hex"])).hex() == case["signature_hex"]
    assert raw.hex() == case["tx_raw_hex"]
    assert tx_hash(raw) == case["tx_hash"]


def test_datetime_timeout_matches_timestamp() -> None:
    """A datetime with microseconds gives the same bytes as the equivalent Timestamp."""
    from datetime import UTC, datetime

    case = next(c for c in CASES if c["timeout_timestamp"] is not None)
    ts = case["timeout_timestamp"]
    when = datetime.fromtimestamp(ts["seconds"], tz=UTC).replace(microsecond=ts["nanos"] // 1000)
    raw = sign_tx(
        _key(case),
        [_message(m) for m in case["messages"]],
        chain_id=case["chain_id"],
        account_number=case["account_number"],
        sequence=case["sequence"],
        gas_limit=case["gas_limit"],
        fee_upokt=case["fee_upokt"],
        memo=case["memo"],
        timeout_timestamp=when,
        unordered=case["unordered"],
    )
    assert raw.hex() == case["tx_raw_hex"]
