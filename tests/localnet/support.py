"""Helpers of the localnet tests: keys, a tiny SIGN_MODE_DIRECT signer built from the protos,
a genesis, claims."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from coincurve import PrivateKey
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.timestamp_pb2 import Timestamp

from relayminer.chain.base import Msg, MsgCreateClaim, SessionHeader
from relayminer.chain.sim.node.crypto import address_from_pubkey
from relayminer.chain.sim.node.genesis import LocalnetConfig, parse_localnet_config
from relayminer.proto.cosmos_base_pb2 import Coin
from relayminer.proto.cosmos_crypto_secp256k1_pb2 import PubKey
from relayminer.proto.cosmos_tx_pb2 import (
    AuthInfo,
    Fee,
    ModeInfo,
    SignDoc,
    SignerInfo,
    TxBody,
    TxRaw,
)
from relayminer.proto.cosmos_tx_signing_pb2 import SIGN_MODE_DIRECT

CHAIN_ID = "pocket"
CUPR = 10


@dataclass(frozen=True)
class Key:
    private: PrivateKey

    @classmethod
    def from_seed(cls, seed: str) -> Key:
        return cls(PrivateKey(hashlib.sha256(seed.encode()).digest()))

    @property
    def public_key(self) -> bytes:
        return bytes(self.private.public_key.format(compressed=True))

    @property
    def address(self) -> str:
        return address_from_pubkey(self.public_key)

    def sign(self, sign_doc: bytes) -> bytes:
        """64-byte r||s, low-S (libsecp256k1 normalises), over sha256(sign_doc)."""
        return bytes(self.private.sign_recoverable(sign_doc)[:64])


SUPPLIER = Key.from_seed("supplier-1")
SUPPLIER2 = Key.from_seed("supplier-2")
APP = Key.from_seed("application-1")
STRANGER = Key.from_seed("nobody")  # not in genesis


def make_config(**overrides: object) -> LocalnetConfig:
    doc: dict[str, object] = {
        "chain_id": CHAIN_ID,
        "block_time_seconds": 1.0,
        "min_gas_price_upokt": "0.01",
        "shared_params": {
            "num_blocks_per_session": 4,
            "grace_period_end_offset_blocks": 1,
            "claim_window_open_offset_blocks": 1,
            "claim_window_close_offset_blocks": 2,
            "proof_window_open_offset_blocks": 1,
            "proof_window_close_offset_blocks": 2,
            "compute_units_to_tokens_multiplier": 1_000_000,
        },
        "proof_params": {
            "proof_requirement_threshold_upokt": 0,
            "proof_request_probability": 0.0,
        },
        "accounts": [
            {"address": SUPPLIER.address, "balance_upokt": 1_000_000},
            {"address": SUPPLIER2.address, "balance_upokt": 5},
        ],
        "services": [{"id": "anvil", "name": "Anvil", "compute_units_per_relay": CUPR}],
        "applications": [{"address": APP.address, "services": ["anvil"]}],
        "suppliers": [
            {"address": SUPPLIER.address, "services": ["anvil"]},
            {"address": SUPPLIER2.address, "services": ["anvil"]},
        ],
    }
    doc.update(overrides)
    return parse_localnet_config(doc)


def root_hash(count: int, cupr: int = CUPR) -> bytes:
    return b"\x11" * 32 + (count * cupr).to_bytes(8, "big") + count.to_bytes(8, "big")


def claim_msg(supplier: str, header: SessionHeader, count: int = 3) -> MsgCreateClaim:
    msg = MsgCreateClaim(supplier_operator_address=supplier, root_hash=root_hash(count))
    msg.session_header.CopyFrom(header)
    return msg


def sign_tx(
    key: Key,
    msgs: Sequence[Msg],
    *,
    chain_id: str = CHAIN_ID,
    account_number: int,
    sequence: int = 0,
    gas_limit: int = 400_000,
    fee_upokt: int = 4000,
    memo: str = "",
    unordered: bool = False,
    timeout_unix_nanos: int = 0,
    include_pubkey: bool = True,
    signature: bytes | None = None,
) -> bytes:
    body = TxBody(memo=memo, unordered=unordered)
    for msg in msgs:
        packed = AnyProto()
        packed.Pack(msg, type_url_prefix="/")
        body.messages.append(packed)
    if timeout_unix_nanos:
        body.timeout_timestamp.CopyFrom(
            Timestamp(seconds=timeout_unix_nanos // 10**9, nanos=timeout_unix_nanos % 10**9)
        )
    info = SignerInfo(
        mode_info=ModeInfo(single=ModeInfo.Single(mode=SIGN_MODE_DIRECT)), sequence=sequence
    )
    if include_pubkey:
        info.public_key.Pack(PubKey(key=key.public_key), type_url_prefix="/")
    fee = Fee(gas_limit=gas_limit)
    if fee_upokt:
        fee.amount.append(Coin(denom="upokt", amount=str(fee_upokt)))
    auth_info = AuthInfo(signer_infos=[info], fee=fee)
    body_bytes, auth_bytes = body.SerializeToString(), auth_info.SerializeToString()
    doc = SignDoc(
        body_bytes=body_bytes,
        auth_info_bytes=auth_bytes,
        chain_id=chain_id,
        account_number=account_number,
    ).SerializeToString()
    sig = key.sign(doc) if signature is None else signature
    return TxRaw(
        body_bytes=body_bytes, auth_info_bytes=auth_bytes, signatures=[sig]
    ).SerializeToString()
