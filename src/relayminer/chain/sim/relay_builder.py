"""Build Go-format relays (pure): for the load generator, the demo and tests.

A relay is the poktroll ``Relay{req, res}`` a relayer marshals after serving a request
(docs/protocol.md): the response keeps only ``payload_hash = SHA-256(response payload)``
(``res.payload`` is cleared). Those bytes are the SMST leaf value and their SHA-256 is the relay
hash (SMST key). Signatures are placeholders derived deterministically from the content: the
simulated chain never checks them.

>>> from relayminer.proto.poktroll_pb2 import SessionHeader
>>> header = SessionHeader(application_address="pokt1app", service_id="svc",
...                        session_id="s1", session_start_block_height=1,
...                        session_end_block_height=4)
>>> relay = build_relay(header, "pokt1sup", b'{"method":"eth_blockNumber"}', b'{"result":"0x1"}')
>>> relay.relay_hash == hashlib.sha256(relay.relay_bytes).digest()
True
>>> mined = mine_relay(header, "pokt1sup", jsonrpc_request, b"{}", b"\\x0f" + b"\\xff" * 31)
>>> mined.relay_hash < b"\\x0f" + b"\\xff" * 31
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import NamedTuple

from relayminer.chain.base import OnChainSession
from relayminer.errors import RelayMinerError
from relayminer.proto.mined_relay_pb2 import MinedRelayMessage
from relayminer.proto.poktroll_pb2 import (
    Relay,
    RelayRequest,
    RelayRequestMetadata,
    RelayResponse,
    RelayResponseMetadata,
    SessionHeader,
)

__all__ = [
    "BuiltRelay",
    "MinedRelay",
    "RelayMiningError",
    "build_relay",
    "jsonrpc_request",
    "mine_relay",
    "mined_relay_message",
]


class RelayMiningError(RelayMinerError):
    """No nonce within ``max_attempts`` gave a relay hash below the difficulty target."""


class BuiltRelay(NamedTuple):
    relay_bytes: bytes
    relay_hash: bytes  # SHA-256(relay_bytes)


class MinedRelay(NamedTuple):
    relay_bytes: bytes
    relay_hash: bytes
    nonce: int  # the nonce that made the relay hash meet the target


def _header(session: SessionHeader | OnChainSession) -> SessionHeader:
    if isinstance(session, OnChainSession):
        return session.header
    if isinstance(session, SessionHeader):
        return session
    raise TypeError(f"session must be a SessionHeader or OnChainSession, got {type(session)}")


def jsonrpc_request(nonce: int, method: str = "eth_blockNumber") -> bytes:
    """A JSON-RPC request payload whose ``id`` is the nonce.

    >>> jsonrpc_request(7)
    b'{"id":7,"jsonrpc":"2.0","method":"eth_blockNumber","params":[]}'
    """
    return f'{{"id":{nonce},"jsonrpc":"2.0","method":"{method}","params":[]}}'.encode()


def build_relay(
    session: SessionHeader | OnChainSession,
    supplier_operator_address: str,
    request_payload: bytes,
    response_payload: bytes,
    *,
    request_signature: bytes | None = None,
    supplier_signature: bytes | None = None,
) -> BuiltRelay:
    """The marshalled relay and its hash (signatures default to deterministic placeholders)."""
    header = _header(session)
    header_bytes = header.SerializeToString(deterministic=True)
    payload_hash = hashlib.sha256(response_payload).digest()
    if request_signature is None:
        request_signature = hashlib.sha256(
            b"simulated-ring-signature" + header_bytes + request_payload
        ).digest()
    if supplier_signature is None:
        supplier_signature = hashlib.sha256(
            b"simulated-supplier-signature"
            + header_bytes
            + supplier_operator_address.encode()
            + payload_hash
        ).digest()
    relay = Relay(
        req=RelayRequest(
            meta=RelayRequestMetadata(
                session_header=header,
                signature=request_signature,
                supplier_operator_address=supplier_operator_address,
            ),
            payload=request_payload,
        ),
        res=RelayResponse(
            meta=RelayResponseMetadata(
                session_header=header, supplier_operator_signature=supplier_signature
            ),
            payload_hash=payload_hash,  # payload itself cleared, as the relayer does
        ),
    )
    relay_bytes = relay.SerializeToString(deterministic=True)
    return BuiltRelay(relay_bytes, hashlib.sha256(relay_bytes).digest())


def _start_nonce(seed: int) -> int:
    digest = hashlib.sha256(f"relay-builder/{seed}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def mine_relay(
    session: SessionHeader | OnChainSession,
    supplier_operator_address: str,
    request_payload: Callable[[int], bytes],
    response_payload: bytes,
    target: bytes,
    *,
    seed: int = 0,
    max_attempts: int = 1_000_000,
) -> MinedRelay:
    """A relay whose hash is below ``target`` (relay mining difficulty, big-endian compare).

    ``request_payload(nonce)`` builds the request with the nonce inside; nonces are tried in
    order from a start derived from ``seed`` (deterministic). Raises :class:`RelayMiningError`
    after ``max_attempts``.
    """
    if len(target) != 32:
        raise ValueError(f"target must be 32 bytes, got {len(target)}")
    start = _start_nonce(seed)
    for nonce in range(start, start + max_attempts):
        relay = build_relay(
            session, supplier_operator_address, request_payload(nonce), response_payload
        )
        if relay.relay_hash < target:
            return MinedRelay(relay.relay_bytes, relay.relay_hash, nonce)
    raise RelayMiningError(f"no relay below target {target.hex()} in {max_attempts} attempts")


def mined_relay_message(
    relay: BuiltRelay | MinedRelay,
    session: SessionHeader | OnChainSession,
    supplier_operator_address: str,
    compute_units_per_relay: int,
    *,
    arrival_block_height: int = 0,
    published_at_unix_nano: int = 0,
) -> MinedRelayMessage:
    """The ``pocket.ha.MinedRelayMessage`` a relayer publishes to ``ha:relays:{supplier}``
        (docs/redis-layout.md;
    pocket-relay-miner `transport/mined_relay.proto`)."""
    header = _header(session)
    return MinedRelayMessage(
        relay_hash=relay.relay_hash,
        relay_bytes=relay.relay_bytes,
        compute_units_per_relay=compute_units_per_relay,
        session_id=header.session_id,
        session_end_height=header.session_end_block_height,
        supplier_operator_address=supplier_operator_address,
        service_id=header.service_id,
        application_address=header.application_address,
        arrival_block_height=arrival_block_height,
        published_at_unix_nano=published_at_unix_nano,
        session_start_height=header.session_start_block_height,
    )
