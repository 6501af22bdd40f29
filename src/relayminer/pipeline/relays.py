"""The relay wire format and its validation (pure, no I/O).

Relayers publish each mined relay as a protobuf ``pocket.ha.MinedRelayMessage`` in field ``data``
of an entry of stream ``ha:relays:{supplier}`` (docs/redis-layout.md;
pocket-relay-miner `transport/mined_relay.proto`). ``parse_entry`` turns a
stream entry into a :class:`Relay` or a :class:`Rejection` naming why the entry cannot be mined;
a rejected entry goes to the dead-letter stream with that reason, never silently away.

>>> m = MinedRelayMessage(relay_bytes=b"req+res", compute_units_per_relay=42, service_id="svc",
...                       session_id="s1", session_end_height=10)
>>> relay = parse_entry(b"1-0", {b"data": m.SerializeToString()})
>>> relay.relay_hash == hashlib.sha256(b"req+res").digest(), relay.hash_repaired
(True, True)
>>> parse_entry(b"2-0", {b"payload": b"x"}).reason
"message missing 'data' field"
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import NamedTuple

from google.protobuf.message import DecodeError

from relayminer.proto.mined_relay_pb2 import MinedRelayMessage
from relayminer.sessions.model import MAX_INT64, session_id_problem

__all__ = ["MinedRelayMessage", "Rejection", "Relay", "parse_entry"]

DATA_FIELD = b"data"


class Relay(NamedTuple):
    """A validated relay, ready for the SMST and the counters (immutable; a named tuple: one
    is built per relay, and a frozen dataclass costs several times more to build)."""

    entry_id: bytes
    relay_hash: bytes  # 32-byte SMST key and dedup member
    relay_bytes: bytes  # SMST value
    compute_units: int  # SMST weight, added to total_compute_units
    session_id: str
    session_start_height: int
    session_end_height: int
    supplier_operator_address: str
    service_id: str
    application_address: str
    published_at_unix_nano: int
    hash_repaired: bool  # the publisher sent no hash: sha256(relay_bytes) was used


class Rejection(NamedTuple):
    """A stream entry that cannot be mined, and why."""

    entry_id: bytes
    reason: str
    data: bytes | None  # the raw payload, kept for the dead-letter stream


#: Session ids repeat across a stream: each distinct one is checked once.
_session_id_problem = functools.lru_cache(maxsize=4096)(session_id_problem)


def parse_entry(entry_id: bytes, fields: Mapping[bytes, bytes] | None) -> Relay | Rejection:
    """Validate one stream entry. Never raises for bad input: returns a :class:`Rejection`."""
    if fields is None:
        return Rejection(entry_id, "entry deleted from the stream", None)
    data = fields.get(DATA_FIELD)
    if data is None:
        return Rejection(entry_id, "message missing 'data' field", None)
    try:
        msg = MinedRelayMessage.FromString(data)
    except DecodeError as err:
        return Rejection(entry_id, f"failed to unmarshal message: {err}", data)
    # Each field is read once: every protobuf attribute read builds a new Python object.
    session_id, relay_bytes = msg.session_id, msg.relay_bytes
    start, end, cu = msg.session_start_height, msg.session_end_height, msg.compute_units_per_relay
    problem = _session_id_problem(session_id)
    if problem is not None:  # a poison id would make the session key name another key
        return Rejection(entry_id, problem, data)
    if not relay_bytes:
        return Rejection(entry_id, "relay_bytes is empty", data)
    service_id = msg.service_id
    if not service_id:  # the session could not be created, nor ever claimed
        return Rejection(entry_id, "service_id is required", data)
    if end <= 0:
        return Rejection(entry_id, f"session_end_height must be > 0 (got {end})", data)
    if start < 0 or start > end:
        return Rejection(
            entry_id, f"session_start_height {start} outside [0, session_end_height]", data
        )
    if cu > MAX_INT64:
        return Rejection(entry_id, f"compute_units_per_relay {cu} exceeds 2^63-1", data)
    # The hash is the SMST key and the dedup member: it must be sha256(relay_bytes), 32 bytes.
    # A wrong one would put a leaf the chain cannot prove (a failed proof: slashing).
    computed = hashlib.sha256(relay_bytes).digest()
    relay_hash = msg.relay_hash
    repaired = False
    if not relay_hash:
        relay_hash = computed
        repaired = True
    elif len(relay_hash) != 32:
        return Rejection(entry_id, f"relay_hash must be 32 bytes (got {len(relay_hash)})", data)
    elif relay_hash != computed:
        return Rejection(entry_id, "hash mismatch: relay_hash is not sha256(relay_bytes)", data)
    return Relay(
        entry_id,
        relay_hash,
        relay_bytes,
        cu,
        session_id,
        start,
        end,
        msg.supplier_operator_address,
        service_id,
        msg.application_address,
        msg.published_at_unix_nano,
        repaired,
    )
