"""Transaction encoding and signing, SIGN_MODE_DIRECT (pure: no I/O).

The bytes follow cosmos-sdk ``x/auth/tx``: ``TxBody`` and ``AuthInfo`` are encoded once, the
signature is over the ``SignDoc`` holding exactly those bytes, and ``TxRaw`` carries them
unchanged (a node verifies against the bytes it receives, never a re-encoding). proto3 default
values are omitted, as Go does, so the output is byte-identical to cosmjs and the Go SDK.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message

from relayminer.chain.pocket.keys import PocketKey
from relayminer.proto import cosmos_base_pb2, cosmos_tx_pb2, cosmos_tx_signing_pb2
from relayminer.proto import cosmos_crypto_secp256k1_pb2 as secp256k1_pb2

__all__ = ["DENOM", "pack_any", "pubkey_any", "sign_tx", "to_timestamp", "tx_hash"]

DENOM = "upokt"
_PUBKEY_URL = "/cosmos.crypto.secp256k1.PubKey"


def pack_any(message: Message) -> any_pb2.Any:
    """``Any`` with the Cosmos type URL (``/`` + full proto name)."""
    return any_pb2.Any(
        type_url="/" + message.DESCRIPTOR.full_name,
        value=message.SerializeToString(deterministic=True),
    )


def pubkey_any(public_key: bytes) -> any_pb2.Any:
    return any_pb2.Any(
        type_url=_PUBKEY_URL, value=secp256k1_pb2.PubKey(key=public_key).SerializeToString()
    )


def to_timestamp(value: datetime | timestamp_pb2.Timestamp) -> timestamp_pb2.Timestamp:
    """A protobuf Timestamp; a naive datetime is taken as UTC. A Timestamp passes through (it
    is how a caller gives nanosecond precision)."""
    if isinstance(value, timestamp_pb2.Timestamp):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    delta = value - epoch
    seconds = delta.days * 86_400 + delta.seconds
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=delta.microseconds * 1000)


def _check_uint(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise ValueError(f"{name} must be a uint64, got {value!r}")


def sign_tx(
    key: PocketKey,
    messages: Sequence[Message],
    *,
    chain_id: str,
    account_number: int,
    sequence: int,
    gas_limit: int,
    fee_upokt: int,
    memo: str = "",
    timeout_timestamp: datetime | timestamp_pb2.Timestamp | None = None,
    unordered: bool = False,
) -> bytes:
    """Signed ``TxRaw`` bytes holding ``messages`` (each packed in an ``Any``).

    ``fee_upokt == 0`` means an empty fee amount list. One signer (``key``), SIGN_MODE_DIRECT,
    public key always included (an account that never sent a tx has none on chain).
    """
    if not messages:
        raise ValueError("a transaction holds at least one message")
    if not chain_id:
        raise ValueError("chain_id must not be empty")
    for name, value in (
        ("account_number", account_number),
        ("sequence", sequence),
        ("gas_limit", gas_limit),
        ("fee_upokt", fee_upokt),
    ):
        _check_uint(name, value)
    body = cosmos_tx_pb2.TxBody(
        messages=[pack_any(m) for m in messages], memo=memo, unordered=unordered
    )
    if timeout_timestamp is not None:
        body.timeout_timestamp.CopyFrom(to_timestamp(timeout_timestamp))
    fee = cosmos_tx_pb2.Fee(gas_limit=gas_limit)
    if fee_upokt:
        fee.amount.append(cosmos_base_pb2.Coin(denom=DENOM, amount=str(fee_upokt)))
    auth_info = cosmos_tx_pb2.AuthInfo(
        signer_infos=[
            cosmos_tx_pb2.SignerInfo(
                public_key=pubkey_any(key.public_key),
                mode_info=cosmos_tx_pb2.ModeInfo(
                    single=cosmos_tx_pb2.ModeInfo.Single(
                        mode=cosmos_tx_signing_pb2.SIGN_MODE_DIRECT
                    )
                ),
                sequence=sequence,
            )
        ],
        fee=fee,
    )
    body_bytes = body.SerializeToString(deterministic=True)
    auth_info_bytes = auth_info.SerializeToString(deterministic=True)
    sign_doc = cosmos_tx_pb2.SignDoc(
        body_bytes=body_bytes,
        auth_info_bytes=auth_info_bytes,
        chain_id=chain_id,
        account_number=account_number,
    ).SerializeToString(deterministic=True)
    raw = cosmos_tx_pb2.TxRaw(
        body_bytes=body_bytes, auth_info_bytes=auth_info_bytes, signatures=[key.sign(sign_doc)]
    )
    return raw.SerializeToString(deterministic=True)


def tx_hash(tx_raw: bytes) -> str:
    """Uppercase hex SHA-256 of the TxRaw bytes: the CometBFT / Cosmos tx hash."""
    return hashlib.sha256(tx_raw).hexdigest().upper()
