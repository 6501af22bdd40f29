"""Pure parts: the test signer against the cosmjs vectors, the decoder, the configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from google.protobuf.any_pb2 import Any as AnyProto

from relayminer.chain.base import MsgCreateClaim, MsgSubmitProof, SessionHeader
from relayminer.chain.sim.node.command import localnet_command
from relayminer.chain.sim.node.crypto import address_from_pubkey, verify_signature
from relayminer.chain.sim.node.genesis import LocalnetConfigError, load_localnet_config
from relayminer.chain.sim.node.txcodec import TxDecodeError, decode_tx
from relayminer.proto.cosmos_tx_pb2 import TxBody, TxRaw
from tests.localnet.support import Key, make_config, sign_tx

REPO = Path(__file__).resolve().parents[2]
#: the cosmjs vectors, pinned in the repository (tests/chain_pocket checks their sha256)
VECTORS = REPO / "tests" / "chain_pocket" / "pocket_tx_vectors.json"


def _messages(case: dict[str, object]) -> list[MsgCreateClaim | MsgSubmitProof]:
    out: list[MsgCreateClaim | MsgSubmitProof] = []
    for m in case["messages"]:  # type: ignore[attr-defined]
        header = SessionHeader(**m["session_header"])
        if m["type"] == "claim":
            out.append(
                MsgCreateClaim(
                    supplier_operator_address=m["supplier_operator_address"],
                    session_header=header,
                    root_hash=bytes.fromhex(m["root_hash_hex"]),
                )
            )
        else:
            out.append(
                MsgSubmitProof(
                    supplier_operator_address=m["supplier_operator_address"],
                    session_header=header,
                    proof=bytes.fromhex(m["proof_hex"]),
                )
            )
    return out


def test_vectors_decode_verify_and_match_the_test_signer() -> None:
    from coincurve import PrivateKey

    cases = json.loads(VECTORS.read_text())["cases"]
    for case in cases:
        raw = bytes.fromhex(case["tx_raw_hex"])
        tx = decode_tx(raw)
        assert tx.signers == (case["address"],)
        pub = bytes.fromhex(case["public_key_hex"])
        assert address_from_pubkey(pub) == case["address"]
        sign_bytes = tx.sign_bytes(case["chain_id"], case["account_number"])
        assert sign_bytes.hex() == case["sign_doc_hex"]
        assert verify_signature(pub, sign_bytes, bytes.fromhex(case["signature_hex"]))
        assert not verify_signature(pub, sign_bytes + b"x", bytes.fromhex(case["signature_hex"]))
    ordered = cases[0]
    key = Key(PrivateKey(bytes.fromhex(ordered["private_key_hex"])))
    ours = sign_tx(
        key,
        _messages(ordered),
        chain_id=ordered["chain_id"],
        account_number=ordered["account_number"],
        sequence=ordered["sequence"],
        gas_limit=ordered["gas_limit"],
        fee_upokt=ordered["fee_upokt"],
        memo=ordered["memo"],
    )
    assert ours.hex() == ordered["tx_raw_hex"]


def test_decoder_refuses_unknown_fields_and_types() -> None:
    with pytest.raises(TxDecodeError):
        decode_tx(b"")
    with pytest.raises(TxDecodeError, match="errUnknownField"):
        decode_tx(TxRaw(body_bytes=b"").SerializeToString() + b"\x50\x01")
    body = TxBody(messages=[AnyProto(type_url="/cosmos.bank.v1beta1.MsgSend")])
    raw = TxRaw(body_bytes=body.SerializeToString()).SerializeToString()
    with pytest.raises(TxDecodeError, match="unable to resolve type URL"):
        decode_tx(raw)


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(LocalnetConfigError, match=r"suppliers\.0\.address"):
        make_config(suppliers=[{"address": "pokt1nope", "services": ["anvil"]}])
    with pytest.raises(LocalnetConfigError, match="unknown service id 'nope'"):
        make_config(applications=[{"address": Key.from_seed("a").address, "services": ["nope"]}])
    with pytest.raises(LocalnetConfigError, match="min_gas_price_upokt"):
        make_config(min_gas_price_upokt="-1")
    with pytest.raises(LocalnetConfigError, match="typo"):
        make_config(typo=1)
    bad = tmp_path / "bad.yaml"
    bad.write_text("chain_id: [unclosed")
    with pytest.raises(LocalnetConfigError, match="not valid YAML"):
        load_localnet_config(bad)
    with pytest.raises(LocalnetConfigError, match="cannot read"):
        load_localnet_config(tmp_path / "missing.yaml")
    result = CliRunner().invoke(localnet_command, ["--config", str(bad)])
    assert result.exit_code == 2 and "not valid YAML" in result.output


def test_example_config_is_valid() -> None:
    config = load_localnet_config(REPO / "localnet.example.yaml")
    assert config.chain_id == "pocket"
    accounts = dict(config.genesis_accounts())
    assert all(s.address in accounts for s in config.suppliers)
