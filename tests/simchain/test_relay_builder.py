"""relay_builder: Go-format relays, relay mining and the stream message."""

from __future__ import annotations

import hashlib

import pytest

from relayminer.chain.sim.relay_builder import (
    RelayMiningError,
    build_relay,
    jsonrpc_request,
    mine_relay,
    mined_relay_message,
)
from relayminer.pipeline.relays import Relay as ParsedRelay
from relayminer.pipeline.relays import parse_entry
from relayminer.proto.poktroll_pb2 import Relay, SessionHeader

HEADER = SessionHeader(
    application_address="pokt1app",
    service_id="svc",
    session_id="abc",
    session_start_block_height=5,
    session_end_block_height=8,
)


def test_relay_layout() -> None:
    built = build_relay(HEADER, "pokt1sup", b"request", b"response")
    assert built.relay_hash == hashlib.sha256(built.relay_bytes).digest()
    relay = Relay.FromString(built.relay_bytes)
    assert relay.req.meta.session_header == HEADER
    assert relay.req.meta.supplier_operator_address == "pokt1sup"
    assert relay.req.meta.signature
    assert relay.req.payload == b"request"
    assert relay.res.meta.session_header == HEADER
    assert relay.res.meta.supplier_operator_signature
    assert relay.res.payload == b""
    assert relay.res.payload_hash == hashlib.sha256(b"response").digest()
    relay_bytes, relay_hash = built  # a plain (bytes, hash) pair too
    assert build_relay(HEADER, "pokt1sup", b"request", b"response") == (relay_bytes, relay_hash)
    assert build_relay(HEADER, "pokt1sup", b"request2", b"response") != built


def test_explicit_signatures_are_kept() -> None:
    built = build_relay(
        HEADER, "pokt1sup", b"q", b"r", request_signature=b"ring", supplier_signature=b"sig"
    )
    relay = Relay.FromString(built.relay_bytes)
    assert (relay.req.meta.signature, relay.res.meta.supplier_operator_signature) == (
        b"ring",
        b"sig",
    )


def test_mining_meets_the_target_deterministically() -> None:
    target = b"\x07" + b"\xff" * 31
    a = mine_relay(HEADER, "pokt1sup", jsonrpc_request, b"{}", target, seed=3)
    b = mine_relay(HEADER, "pokt1sup", jsonrpc_request, b"{}", target, seed=3)
    assert a == b
    assert a.relay_hash < target
    assert Relay.FromString(a.relay_bytes).req.payload == jsonrpc_request(a.nonce)
    c = mine_relay(HEADER, "pokt1sup", jsonrpc_request, b"{}", target, seed=4)
    assert c.nonce != a.nonce


def test_mining_gives_up() -> None:
    with pytest.raises(RelayMiningError):
        mine_relay(HEADER, "pokt1sup", jsonrpc_request, b"{}", bytes(31) + b"\x01", max_attempts=5)


def test_mined_relay_message_parses_like_a_go_one() -> None:
    built = build_relay(HEADER, "pokt1sup", b"q", b"r")
    msg = mined_relay_message(
        built, HEADER, "pokt1sup", 42, arrival_block_height=6, published_at_unix_nano=123
    )
    relay = parse_entry(b"1-0", {b"data": msg.SerializeToString()})
    assert isinstance(relay, ParsedRelay), relay
    assert relay.relay_hash == built.relay_hash
    assert relay.relay_bytes == built.relay_bytes
    assert relay.compute_units == 42
    assert (relay.session_id, relay.session_start_height, relay.session_end_height) == ("abc", 5, 8)
    assert msg.arrival_block_height == 6
    assert (msg.service_id, msg.application_address) == ("svc", "pokt1app")
