"""Session states, the session snapshot and its two Redis encodings (pure, no I/O).

The hash layout is a wire contract with the Go miners (docs/redis-layout.md): field names,
decimal integers, RFC3339Nano timestamps, the raw 48-byte claimed root. Older miners stored the
snapshot as a JSON string at the same key (§3.5); it is read here and migrated by the store.

>>> snap = SessionSnapshot("s1", "pokt1sup", "svc", "pokt1app", 1, 10, SessionState.ACTIVE)
>>> fields = encode_hash(snap, with_counters=True)
>>> fields["state"], fields["relay_count"]
(b'active', b'0')
>>> decode_hash("k", fields).session_end_height
10
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relayminer.errors import SessionDecodeError
from relayminer.sessions.timefmt import format_rfc3339nano, parse_rfc3339nano

#: Length of an SMST root: 32-byte hash || BE64 sum || BE64 count (docs/smst.md).
SMST_ROOT_LEN = 48
MAX_INT64 = 2**63 - 1
MAX_UINT64 = 2**64 - 1


class SessionState(enum.StrEnum):
    """The miner's per-session state machine (docs/lifecycle.md)."""

    ACTIVE = "active"
    CLAIMING = "claiming"
    CLAIMED = "claimed"
    PROVING = "proving"
    PROVED = "proved"
    PROBABILISTIC_PROVED = "probabilistic_proved"
    CLAIM_WINDOW_CLOSED = "claim_window_closed"
    CLAIM_TX_ERROR = "claim_tx_error"
    CLAIM_MISSING = "claim_missing"
    CLAIM_SKIPPED = "claim_skipped"
    PROOF_WINDOW_CLOSED = "proof_window_closed"
    PROOF_TX_ERROR = "proof_tx_error"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def is_success(self) -> bool:
        return self in (SessionState.PROVED, SessionState.PROBABILISTIC_PROVED)

    @property
    def is_failure(self) -> bool:
        return self in _FAILURE_STATES


TERMINAL_STATES: frozenset[SessionState] = frozenset(
    {
        SessionState.PROVED,
        SessionState.PROBABILISTIC_PROVED,
        SessionState.CLAIM_WINDOW_CLOSED,
        SessionState.CLAIM_TX_ERROR,
        SessionState.CLAIM_MISSING,
        SessionState.CLAIM_SKIPPED,
        SessionState.PROOF_WINDOW_CLOSED,
        SessionState.PROOF_TX_ERROR,
    }
)
_FAILURE_STATES: frozenset[SessionState] = TERMINAL_STATES - {
    SessionState.PROVED,
    SessionState.PROBABILISTIC_PROVED,
    SessionState.CLAIM_SKIPPED,
}


@dataclass
class SessionSnapshot:
    """Everything the miner stores about one session of one supplier."""

    session_id: str
    supplier_operator_address: str
    service_id: str
    application_address: str
    session_start_height: int
    session_end_height: int
    state: SessionState
    relay_count: int = 0
    total_compute_units: int = 0
    claimed_root_hash: bytes | None = None
    claim_tx_hash: str = ""
    proof_tx_hash: str = ""
    last_wal_entry_id: str = ""
    created_at: datetime | None = None
    last_updated_at: datetime | None = None
    settlement_outcome: str | None = None
    settlement_height: int | None = None
    settlement_tx_hash: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field's type and range; raise TypeError/ValueError naming the field."""
        require_id("session_id", self.session_id)
        for name in ("supplier_operator_address", "service_id", "application_address"):
            _require_type(name, getattr(self, name), str)
        for name in ("claim_tx_hash", "proof_tx_hash", "last_wal_entry_id"):
            _require_type(name, getattr(self, name), str)
        for name in ("settlement_outcome", "settlement_tx_hash"):
            value = getattr(self, name)
            if value is not None:
                _require_type(name, value, str)
        _require_int("session_start_height", self.session_start_height, 0, MAX_INT64)
        _require_int("session_end_height", self.session_end_height, 0, MAX_INT64)
        _require_int("relay_count", self.relay_count, 0, MAX_INT64)
        _require_int("total_compute_units", self.total_compute_units, 0, MAX_UINT64)
        if self.settlement_height is not None:
            _require_int("settlement_height", self.settlement_height, -MAX_INT64 - 1, MAX_INT64)
        if not isinstance(self.state, SessionState):
            try:
                self.state = SessionState(self.state)
            except ValueError:
                raise ValueError(f"state: unknown session state {self.state!r}") from None
        if self.claimed_root_hash is not None:
            _require_type("claimed_root_hash", self.claimed_root_hash, bytes)
        for name in ("created_at", "last_updated_at"):
            value = getattr(self, name)
            if value is not None:
                _require_type(name, value, datetime)
                if value.tzinfo is None:
                    raise ValueError(f"{name}: datetime must be timezone-aware")


def require_id(name: str, value: object) -> str:
    """Validate a non-empty identifier argument (session id, supplier address ...)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return value


#: Session ids that would name another key of the supplier (``{P}:{supplier}:index``).
RESERVED_SESSION_IDS = frozenset({"index"})


def session_id_problem(session_id: str) -> str | None:
    """Why ``session_id`` cannot be a session id, or None.

    The session key is ``{prefix}:{supplier}:{session_id}``: ``index`` is the supplier index
    key, ``state:{state}`` a state index key, and any ``:`` lets an id reach another key's
    namespace, so both are refused; control characters too (never in a poktroll session id,
    which is hex). The full rule and why: ``docs/failure-behaviour.md``.
    """
    if not session_id:
        return "session_id is required"
    if session_id in RESERVED_SESSION_IDS:
        return f"session_id {session_id!r} is reserved (it names the supplier's index key)"
    if ":" in session_id:
        return f"session_id {session_id[:80]!r} contains ':' (it could name another key)"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in session_id):
        return f"session_id {session_id[:80]!r} contains a control character"
    return None


def require_session_id(value: object, name: str = "session_id") -> str:
    """Validate a session id argument: :func:`require_id` plus :func:`session_id_problem`."""
    sid = require_id(name, value)
    problem = session_id_problem(sid)
    if problem is not None:
        raise ValueError(problem)
    return sid


def require_compute_units(value: object, name: str = "compute_units") -> int:
    """Validate compute units: an int in [0, 2^63-1], the range HINCRBY holds exactly."""
    _require_int(name, value, 0, MAX_INT64)
    assert isinstance(value, int)
    return value


def _require_type(name: str, value: object, kind: type) -> None:
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be {kind.__name__}, got {type(value).__name__}")


def _require_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


# --- hash encoding ----------------------------------------------------------------------------

COUNTER_FIELDS = ("relay_count", "total_compute_units")
OPTIONAL_FIELDS = (
    "claimed_root_hash",
    "claim_tx_hash",
    "proof_tx_hash",
    "last_wal_entry_id",
    "settlement_outcome",
    "settlement_height",
    "settlement_tx_hash",
)


def _time_text(value: datetime | None) -> bytes:
    return format_rfc3339nano(value).encode() if value is not None else b""


def encode_hash(snapshot: SessionSnapshot, *, with_counters: bool) -> dict[str, bytes]:
    """Hash fields of a snapshot: metadata, set optional fields, counters only if asked.

    Counters are written only when a key is created (or migrated); afterwards only the
    increment script moves them, so a metadata write never carries them.
    """
    s = snapshot
    fields: dict[str, bytes] = {
        "session_id": s.session_id.encode(),
        "supplier_operator_address": s.supplier_operator_address.encode(),
        "service_id": s.service_id.encode(),
        "application_address": s.application_address.encode(),
        "session_start_height": str(s.session_start_height).encode(),
        "session_end_height": str(s.session_end_height).encode(),
        "state": s.state.value.encode(),
        "created_at": _time_text(s.created_at),
        "last_updated_at": _time_text(s.last_updated_at),
    }
    if s.claimed_root_hash:
        fields["claimed_root_hash"] = s.claimed_root_hash
    for name in ("claim_tx_hash", "proof_tx_hash", "last_wal_entry_id"):
        value = getattr(s, name)
        if value:
            fields[name] = value.encode()
    if s.settlement_outcome is not None:
        fields["settlement_outcome"] = s.settlement_outcome.encode()
    if s.settlement_height is not None:
        fields["settlement_height"] = str(s.settlement_height).encode()
    if s.settlement_tx_hash is not None:
        fields["settlement_tx_hash"] = s.settlement_tx_hash.encode()
    if with_counters:
        fields["relay_count"] = str(s.relay_count).encode()
        fields["total_compute_units"] = str(s.total_compute_units).encode()
    return fields


def stale_optional_fields(snapshot: SessionSnapshot) -> list[str]:
    """Optional fields absent from ``snapshot``: a save deletes them from an existing hash."""
    present = encode_hash(snapshot, with_counters=False)
    return [name for name in OPTIONAL_FIELDS if name not in present]


def _text(key: str, raw: Mapping[str, bytes], name: str) -> str:
    value = raw.get(name)
    if value is None:
        return ""
    try:
        return value.decode()
    except UnicodeDecodeError as err:
        raise SessionDecodeError(key, name, f"invalid UTF-8: {err}") from err


def _integer(key: str, raw: Mapping[str, bytes], name: str, low: int, high: int) -> int | None:
    text = _text(key, raw, name)
    if text == "":
        return None
    try:
        value = int(text, 10)
    except ValueError:
        raise SessionDecodeError(key, name, f"not a decimal integer: {text!r}") from None
    if not low <= value <= high:
        raise SessionDecodeError(key, name, f"{value} out of range [{low}, {high}]")
    return value


def _timestamp(key: str, raw: Mapping[str, bytes], name: str) -> datetime | None:
    text = _text(key, raw, name)
    if text == "":
        return None
    try:
        return parse_rfc3339nano(text)
    except ValueError as err:
        raise SessionDecodeError(key, name, str(err)) from err


def _state(key: str, text: str) -> SessionState:
    try:
        return SessionState(text)
    except ValueError:
        reason = "missing" if text == "" else f"unknown state {text!r}"
        raise SessionDecodeError(key, "state", reason) from None


def _root(value: bytes | None) -> bytes | None:
    # A root of any other length than 48 reads as "unclaimed" (Go's SMSTRootLen rule).
    return value if value is not None and len(value) == SMST_ROOT_LEN else None


def decode_hash(key: str, raw: Mapping[str, bytes] | Mapping[bytes, bytes]) -> SessionSnapshot:
    """Decode HGETALL output (bytes or str field names). Raises SessionDecodeError naming the
    field that does not parse. ``key`` is only used in error messages."""
    fields: dict[str, bytes] = {
        (k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()
    }
    opt_height = "settlement_height"
    return SessionSnapshot(
        session_id=_text(key, fields, "session_id"),
        supplier_operator_address=_text(key, fields, "supplier_operator_address"),
        service_id=_text(key, fields, "service_id"),
        application_address=_text(key, fields, "application_address"),
        session_start_height=_integer(key, fields, "session_start_height", 0, MAX_INT64) or 0,
        session_end_height=_integer(key, fields, "session_end_height", 0, MAX_INT64) or 0,
        state=_state(key, _text(key, fields, "state")),
        relay_count=_integer(key, fields, "relay_count", 0, MAX_INT64) or 0,
        total_compute_units=_integer(key, fields, "total_compute_units", 0, MAX_UINT64) or 0,
        claimed_root_hash=_root(fields.get("claimed_root_hash")),
        claim_tx_hash=_text(key, fields, "claim_tx_hash"),
        proof_tx_hash=_text(key, fields, "proof_tx_hash"),
        last_wal_entry_id=_text(key, fields, "last_wal_entry_id"),
        created_at=_timestamp(key, fields, "created_at"),
        last_updated_at=_timestamp(key, fields, "last_updated_at"),
        settlement_outcome=(
            _text(key, fields, "settlement_outcome") if "settlement_outcome" in fields else None
        ),
        settlement_height=_integer(key, fields, opt_height, -MAX_INT64 - 1, MAX_INT64),
        settlement_tx_hash=(
            _text(key, fields, "settlement_tx_hash") if "settlement_tx_hash" in fields else None
        ),
    )


# --- legacy JSON ------------------------------------------------------------------------------

_GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def decode_legacy_json(key: str, payload: bytes) -> SessionSnapshot:
    """Decode the legacy JSON-string layout. The 48-byte root rule is applied here too (the Go
    reader skips it; a wrong-length root would be rejected by the chain anyway)."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise SessionDecodeError(
            key, "<json>", f"failed to unmarshal legacy snapshot: {err}"
        ) from err
    if not isinstance(doc, dict):
        raise SessionDecodeError(key, "<json>", "legacy snapshot is not a JSON object")
    fields: dict[str, bytes] = {}
    for name, value in doc.items():
        if value is None:
            continue
        if name == "claimed_root_hash":
            try:
                fields[name] = base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError) as err:
                raise SessionDecodeError(key, name, f"invalid base64: {err}") from err
        elif isinstance(value, bool):
            raise SessionDecodeError(key, name, "unexpected boolean")
        elif isinstance(value, int | str):
            fields[name] = str(value).encode()
        else:
            raise SessionDecodeError(key, name, f"unexpected JSON value {value!r}")
    return decode_hash(key, fields)


def encode_legacy_json(snapshot: SessionSnapshot) -> bytes:
    """The legacy JSON layout as older Go miners wrote it (used to test migration)."""
    s = snapshot
    doc: dict[str, Any] = {
        "session_id": s.session_id,
        "supplier_operator_address": s.supplier_operator_address,
        "service_id": s.service_id,
        "application_address": s.application_address,
        "session_start_height": s.session_start_height,
        "session_end_height": s.session_end_height,
        "state": s.state.value,
        "relay_count": s.relay_count,
        "total_compute_units": s.total_compute_units,
        "last_updated_at": format_rfc3339nano(s.last_updated_at)
        if s.last_updated_at
        else _GO_ZERO_TIME,
        "created_at": format_rfc3339nano(s.created_at) if s.created_at else _GO_ZERO_TIME,
    }
    if s.claimed_root_hash:
        doc["claimed_root_hash"] = base64.b64encode(s.claimed_root_hash).decode()
    for name in ("claim_tx_hash", "proof_tx_hash", "last_wal_entry_id"):
        if getattr(s, name):
            doc[name] = getattr(s, name)
    for name in ("settlement_outcome", "settlement_height", "settlement_tx_hash"):
        if getattr(s, name) is not None:
            doc[name] = getattr(s, name)
    return json.dumps(doc).encode()
