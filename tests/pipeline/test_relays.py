"""The relay wire format and entry validation (pure)."""

from __future__ import annotations

import hashlib

import pytest

from relayminer.pipeline.relays import MinedRelayMessage, Rejection, Relay, parse_entry


def full_message(**overrides: object) -> MinedRelayMessage:
    fields: dict[str, object] = {
        "relay_hash": hashlib.sha256(b"relay").digest(),
        "relay_bytes": b"relay",
        "compute_units_per_relay": 1000,
        "session_id": "sess-1",
        "session_end_height": 110,
        "supplier_operator_address": "pokt1test",
        "service_id": "develop-http",
        "application_address": "pokt1app",
        "arrival_block_height": 105,
        "published_at_unix_nano": 1_700_000_000_000_000_000,
        "session_start_height": 101,
    }
    fields.update(overrides)
    return MinedRelayMessage(**fields)  # type: ignore[arg-type]


def test_wire_bytes_match_the_go_encoding() -> None:
    # Tags 0x0a..0x58 in field order, int64 as plain varints, zero values omitted (spec §5.1).
    m = MinedRelayMessage(
        relay_hash=b"\x01",
        relay_bytes=b"\x02",
        compute_units_per_relay=3,
        session_id="s",
        session_end_height=5,
        supplier_operator_address="p",
        service_id="v",
        application_address="a",
        arrival_block_height=9,
        published_at_unix_nano=10,
        session_start_height=11,
    )
    assert m.SerializeToString().hex() == (
        "0a0101120102180322017328053201703a01764201614809500a580b"
    )
    assert MinedRelayMessage().SerializeToString() == b""
    assert MinedRelayMessage.FromString(b"") == MinedRelayMessage()


def test_parse_valid_entry() -> None:
    m = full_message()
    relay = parse_entry(b"1-0", {b"data": m.SerializeToString()})
    assert isinstance(relay, Relay)
    assert (relay.session_id, relay.service_id, relay.compute_units) == (
        "sess-1",
        "develop-http",
        1000,
    )
    assert relay.relay_bytes == b"relay" and relay.relay_hash == hashlib.sha256(b"relay").digest()
    assert (relay.session_start_height, relay.session_end_height) == (101, 110)
    assert not relay.hash_repaired


def test_empty_hash_is_repaired_from_the_bytes() -> None:
    relay = parse_entry(b"1-0", {b"data": full_message(relay_hash=b"").SerializeToString()})
    assert isinstance(relay, Relay)
    assert relay.relay_hash == hashlib.sha256(b"relay").digest() and relay.hash_repaired


def test_unknown_fields_are_skipped() -> None:
    data = full_message().SerializeToString() + bytes.fromhex("a00601")  # field 100, varint 1
    assert isinstance(parse_entry(b"1-0", {b"data": data}), Relay)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (None, "entry deleted"),
        ({b"other": b"x"}, "missing 'data'"),
        ({b"data": b"\xff\xff\xff\xff"}, "failed to unmarshal"),
        ({b"data": bytes.fromhex("2202ffff")}, "failed to unmarshal"),  # invalid UTF-8
        ({b"data": full_message(session_id="").SerializeToString()}, "session_id is required"),
        ({b"data": full_message(relay_bytes=b"").SerializeToString()}, "relay_bytes is empty"),
        ({b"data": full_message(service_id="").SerializeToString()}, "service_id is required"),
        ({b"data": full_message(session_end_height=0).SerializeToString()}, "session_end_height"),
        ({b"data": full_message(session_end_height=-3).SerializeToString()}, "session_end_height"),
        (
            {b"data": full_message(session_start_height=200).SerializeToString()},
            "session_start_height",
        ),
        ({b"data": full_message(compute_units_per_relay=2**63).SerializeToString()}, "2^63-1"),
        ({b"data": full_message(relay_hash=b"\x01" * 31).SerializeToString()}, "32 bytes"),
    ],
)
def test_malformed_entries_are_rejected_with_a_reason(
    fields: dict[bytes, bytes] | None, reason: str
) -> None:
    result = parse_entry(b"7-1", fields)
    assert isinstance(result, Rejection)
    assert reason in result.reason
    assert result.entry_id == b"7-1"
    assert result.data == (fields or {}).get(b"data")
