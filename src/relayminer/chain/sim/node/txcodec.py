"""Decoding a broadcast transaction (TxRaw, SIGN_MODE_DIRECT) the way the Cosmos SDK does.

Pure: bytes in, a :class:`DecodedTx` or a :class:`TxDecodeError` (sdk code 2) out. The SDK's
decoder refuses unknown fields in TxRaw, TxBody and AuthInfo (except non-critical extension
fields, numbers >= 1024), and messages whose type URL the app does not know; so does this one.
The sign bytes are built from the *received* ``body_bytes``/``auth_info_bytes``, never from a
re-encoding, so a client that signs other bytes than it sends is caught.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from google.protobuf import unknown_fields
from google.protobuf.message import DecodeError, Message

from relayminer.chain.base import Msg, MsgCreateClaim, MsgSubmitProof
from relayminer.proto.cosmos_tx_pb2 import AuthInfo, SignDoc, TxBody, TxRaw

__all__ = [
    "MSG_TYPES",
    "DecodedTx",
    "TxDecodeError",
    "decode_messages",
    "decode_tx",
    "tx_hash",
]

MSG_TYPES: Final[dict[str, type[MsgCreateClaim] | type[MsgSubmitProof]]] = {
    "/pocket.proof.MsgCreateClaim": MsgCreateClaim,
    "/pocket.proof.MsgSubmitProof": MsgSubmitProof,
}
_NON_CRITICAL_FIELD_MIN: Final = 1024


class TxDecodeError(ValueError):
    """The bytes are not a transaction this chain can decode (sdk 2, "tx parse error")."""


@dataclass(frozen=True, slots=True)
class DecodedTx:
    raw: bytes
    hash: str  # uppercase hex SHA-256 of ``raw``: the CometBFT tx hash
    tx_raw: TxRaw
    body: TxBody
    auth_info: AuthInfo
    msgs: tuple[Msg, ...]
    type_urls: tuple[str, ...]

    @property
    def signers(self) -> tuple[str, ...]:
        """Unique signers in message order (each message's signer is its supplier)."""
        seen: dict[str, None] = {}
        for msg in self.msgs:
            seen.setdefault(msg.supplier_operator_address, None)
        return tuple(seen)

    def sign_bytes(self, chain_id: str, account_number: int) -> bytes:
        doc = SignDoc(
            body_bytes=self.tx_raw.body_bytes,
            auth_info_bytes=self.tx_raw.auth_info_bytes,
            chain_id=chain_id,
            account_number=account_number,
        )
        return doc.SerializeToString()

    @property
    def timeout_unix_nanos(self) -> int:
        ts = self.body.timeout_timestamp
        return ts.seconds * 1_000_000_000 + ts.nanos

    @property
    def gas_limit(self) -> int:
        return self.auth_info.fee.gas_limit


def tx_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest().upper()


def _parse(cls: type[Message], data: bytes, what: str, allow_non_critical: bool) -> Message:
    msg = cls()
    try:
        msg.ParseFromString(data)
    except DecodeError as err:
        raise TxDecodeError(f"{what}: {err}") from err
    unknown = unknown_fields.UnknownFieldSet(msg)
    for i in range(len(unknown)):
        field = unknown[i]
        if not (allow_non_critical and field.field_number >= _NON_CRITICAL_FIELD_MIN):
            raise TxDecodeError(
                f"errUnknownField {what}: tag {field.field_number}, wire type {field.wire_type}"
            )
    return msg


def decode_tx(raw: bytes) -> DecodedTx:
    """Decode TxRaw bytes; :class:`TxDecodeError` says why it cannot be."""
    if not raw:
        raise TxDecodeError("tx bytes are empty")
    tx_raw = _parse(TxRaw, raw, "TxRaw", False)
    assert isinstance(tx_raw, TxRaw)
    body = _parse(TxBody, tx_raw.body_bytes, "TxBody", True)
    auth_info = _parse(AuthInfo, tx_raw.auth_info_bytes, "AuthInfo", True)
    assert isinstance(body, TxBody) and isinstance(auth_info, AuthInfo)
    msgs: list[Msg] = []
    urls: list[str] = []
    for index, any_msg in enumerate(body.messages):
        cls = MSG_TYPES.get(any_msg.type_url)
        if cls is None:
            raise TxDecodeError(f"unable to resolve type URL {any_msg.type_url}")
        decoded = _parse(cls, any_msg.value, f"message {index} ({any_msg.type_url})", False)
        assert isinstance(decoded, MsgCreateClaim | MsgSubmitProof)
        msgs.append(decoded)
        urls.append(any_msg.type_url)
    return DecodedTx(raw, tx_hash(raw), tx_raw, body, auth_info, tuple(msgs), tuple(urls))


def decode_messages(raw: bytes) -> list[Msg]:
    """The messages of TxRaw bytes (the simulated chain's ``tx_decoder`` for the node)."""
    from relayminer.chain.sim.errors import SimChainStateError

    try:
        return list(decode_tx(raw).msgs)
    except TxDecodeError as err:
        raise SimChainStateError(f"cannot decode tx: {err}") from err
