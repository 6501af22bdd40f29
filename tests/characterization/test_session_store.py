"""Characterization of the Redis session store (Go: pocket-relay-miner `miner/session_store.go`;
API.md fixes 5-6)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from relayminer import (
    ClosedError,
    RedisSessionStore,
    RelayMinerError,
    SessionDecodeError,
    SessionNotFoundError,
    SessionSnapshot,
    SessionState,
    SessionStore,
    SessionStoreConfig,
    SessionTerminalError,
    StoreError,
)
from relayminer.sessions.model import TERMINAL_STATES, encode_legacy_json
from tests.conftest import RedisBackend
from tests.helpers import release_together

# Each characterization test runs three times per session (shuffled with the rest).
pytestmark = pytest.mark.repeat(3)

SUPPLIER = "pokt1test"
PREFIX = "ha:miner:sessions"
RFC3339 = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def make_store(backend: RedisBackend, *, own_client: bool = False) -> RedisSessionStore:
    client = backend.new_client() if own_client else backend.client
    config = SessionStoreConfig(
        supplier_address=SUPPLIER, key_prefix=PREFIX, session_ttl_seconds=3600
    )
    return RedisSessionStore(client, config)


@pytest.fixture
def store(backend: RedisBackend) -> RedisSessionStore:
    return make_store(backend)


def snap(
    session_id: str = "sess-1", state: SessionState = SessionState.ACTIVE, **kw: object
) -> SessionSnapshot:
    fields: dict[str, object] = {
        "supplier_operator_address": SUPPLIER,
        "service_id": "svc-test",
        "application_address": "pokt1app",
        "session_start_height": 100,
        "session_end_height": 110,
    }
    fields.update(kw)
    return SessionSnapshot(session_id=session_id, state=state, **fields)  # type: ignore[arg-type]


async def counters(store: RedisSessionStore, sid: str = "sess-1") -> tuple[int, int]:
    s = await store.get(sid)
    assert s is not None
    return s.relay_count, s.total_compute_units


async def ids_in(backend: RedisBackend, key: str) -> set[str]:
    return {m.decode() for m in await backend.client.smembers(key)}


def key(sid: str) -> str:
    return f"{PREFIX}:{SUPPLIER}:{sid}"


# --- increments (§7.2 items 1-7) --------------------------------------------------------------


async def test_increment_basic(store: RedisSessionStore) -> None:
    await store.save(snap())
    await store.increment_relay_count("sess-1", 100)
    assert await counters(store) == (1, 100)


async def test_increment_multiple(store: RedisSessionStore) -> None:
    await store.save(snap())
    for _ in range(10):
        await store.increment_relay_count("sess-1", 50)
    assert await counters(store) == (10, 500)


@pytest.mark.parametrize("state", sorted(TERMINAL_STATES))
async def test_increment_rejects_terminal_state(
    store: RedisSessionStore, state: SessionState
) -> None:
    await store.save(snap(state=state, relay_count=5, total_compute_units=500))
    with pytest.raises(SessionTerminalError, match="session is in terminal state"):
        await store.increment_relay_count("sess-1", 100)
    assert await counters(store) == (5, 500)


@pytest.mark.parametrize(
    "state",
    [SessionState.ACTIVE, SessionState.CLAIMING, SessionState.CLAIMED, SessionState.PROVING],
)
async def test_increment_allows_non_terminal_states(
    store: RedisSessionStore, state: SessionState
) -> None:
    await store.save(snap(state=state))
    await store.increment_relay_count("sess-1", 1)
    assert await counters(store) == (1, 1)


async def test_increment_session_not_found(backend: RedisBackend, store: RedisSessionStore) -> None:
    with pytest.raises(SessionNotFoundError, match="session not found: ghost"):
        await store.increment_relay_count("ghost", 10)
    assert await backend.client.exists(key("ghost")) == 0


async def test_increment_concurrent_safety(backend: RedisBackend, store: RedisSessionStore) -> None:
    await store.save(snap())
    stores = [make_store(backend, own_client=True) for _ in range(50)]
    await release_together(50, lambda i: stores[i].increment_relay_count("sess-1", 10))
    assert await counters(store) == (50, 500)


async def test_increment_preserves_other_fields(store: RedisSessionStore) -> None:
    original = snap(
        relay_count=5,
        total_compute_units=500,
        last_wal_entry_id="wal-123",
        supplier_operator_address="pokt1supplier",
    )
    await store.save(original)
    await store.increment_relay_count("sess-1", 100)
    got = await store.get("sess-1")
    assert got is not None
    assert (got.relay_count, got.total_compute_units) == (6, 600)
    assert got.supplier_operator_address == "pokt1supplier"
    assert (got.service_id, got.application_address) == ("svc-test", "pokt1app")
    assert (got.session_start_height, got.session_end_height) == (100, 110)
    assert got.state is SessionState.ACTIVE
    assert got.last_wal_entry_id == "wal-123"
    assert got.created_at == original.created_at


# --- save and the hash layout (§7.2 items 8-10) -----------------------------------------------


async def test_save_state_index_cleanup(store: RedisSessionStore) -> None:
    await store.save(snap())
    await store.save(snap(state=SessionState.CLAIMING))
    assert len(await store.get_by_state(SessionState.CLAIMING)) == 1
    assert await store.get_by_state(SessionState.ACTIVE) == []


async def test_save_hash_field_round_trip(backend: RedisBackend, store: RedisSessionStore) -> None:
    root = b"\x5a" * 48
    original = snap(
        "sess-roundtrip",
        SessionState.CLAIMED,
        relay_count=3,
        total_compute_units=300,
        claimed_root_hash=root,
        claim_tx_hash="CLAIMTX",
        proof_tx_hash="PROOFTX",
        last_wal_entry_id="1700000000000-0",
        settlement_outcome="settled_proven",
        settlement_height=1234,
        settlement_tx_hash="SETTLETX",
    )
    await store.save(original)
    assert await backend.client.type(key("sess-roundtrip")) == b"hash"
    got = await store.get("sess-roundtrip")
    assert got is not None
    assert got == original  # every field, timestamps included (microsecond precision)
    assert got.created_at is not None and got.last_updated_at is not None
    assert got.created_at.year >= 2026


async def test_hash_layout_is_the_go_wire_format(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await store.save(
        snap(
            "sess-wire",
            SessionState.CLAIMED,
            relay_count=7,
            total_compute_units=2**63 - 1,
            claimed_root_hash=b"\x01" * 48,
            claim_tx_hash="ABC",
        )
    )
    raw = await backend.client.hgetall(key("sess-wire"))
    assert set(raw) == {
        b"session_id",
        b"supplier_operator_address",
        b"service_id",
        b"application_address",
        b"session_start_height",
        b"session_end_height",
        b"state",
        b"relay_count",
        b"total_compute_units",
        b"claimed_root_hash",
        b"claim_tx_hash",
        b"created_at",
        b"last_updated_at",
    }
    assert raw[b"session_id"] == b"sess-wire"
    assert raw[b"state"] == b"claimed"
    assert raw[b"session_start_height"] == b"100"
    assert raw[b"relay_count"] == b"7"
    assert raw[b"total_compute_units"] == b"9223372036854775807"
    assert raw[b"claimed_root_hash"] == b"\x01" * 48  # raw bytes, not hex or base64
    assert RFC3339.match(raw[b"created_at"]) and RFC3339.match(raw[b"last_updated_at"])


async def test_reads_go_written_timestamps_with_offsets(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await store.save(snap())
    await backend.client.hset(
        key("sess-1"),
        mapping={
            "created_at": "2026-08-20T12:00:00.123456789+02:00",
            "last_updated_at": "2026-08-20T12:00:00Z",
        },
    )
    got = await store.get("sess-1")
    assert got is not None and got.created_at is not None
    assert got.created_at.astimezone(UTC) == datetime(2026, 8, 20, 10, 0, 0, 123456, tzinfo=UTC)
    assert got.last_updated_at == datetime(2026, 8, 20, 12, 0, tzinfo=UTC)


async def test_save_clears_stale_optional_fields(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await store.save(
        snap(
            claim_tx_hash="tx-1",
            last_wal_entry_id="wal-1",
            claimed_root_hash=b"\x01" * 8,
            settlement_outcome="expired",
            settlement_height=5,
        )
    )
    await store.save(snap())
    got = await store.get("sess-1")
    assert got is not None
    assert (got.claim_tx_hash, got.last_wal_entry_id, got.claimed_root_hash) == ("", "", None)
    assert got.settlement_outcome is None and got.settlement_height is None
    for field in (
        "claim_tx_hash",
        "last_wal_entry_id",
        "claimed_root_hash",
        "settlement_outcome",
        "settlement_height",
    ):
        assert not await backend.client.hexists(key("sess-1"), field)


async def test_root_of_wrong_length_reads_as_unclaimed(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await store.save(snap(claimed_root_hash=b"\x02" * 47))
    assert await backend.client.hget(key("sess-1"), "claimed_root_hash") == b"\x02" * 47
    got = await store.get("sess-1")
    assert got is not None and got.claimed_root_hash is None


async def test_settlement_outcome_empty_string_is_not_null(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await store.save(snap())
    await backend.client.hset(
        key("sess-1"),
        mapping={"settlement_outcome": "", "settlement_tx_hash": "", "settlement_height": ""},
    )
    got = await store.get("sess-1")
    assert got is not None
    assert (got.settlement_outcome, got.settlement_tx_hash, got.settlement_height) == ("", "", None)


# --- legacy JSON (§7.2 items 11-15) -----------------------------------------------------------


async def put_legacy(backend: RedisBackend, s: SessionSnapshot, *, indexed: bool = False) -> None:
    await backend.client.set(key(s.session_id), encode_legacy_json(s))
    if indexed:
        await backend.client.sadd(f"{PREFIX}:{SUPPLIER}:index", s.session_id)
        await backend.client.sadd(f"{PREFIX}:{SUPPLIER}:state:{s.state}", s.session_id)


async def test_get_legacy_json_fallback(backend: RedisBackend, store: RedisSessionStore) -> None:
    await put_legacy(
        backend, snap(relay_count=7, total_compute_units=70, claimed_root_hash=b"\x09" * 48)
    )
    got = await store.get("sess-1")
    assert got is not None
    assert (got.relay_count, got.total_compute_units, got.state) == (7, 70, SessionState.ACTIVE)
    assert got.claimed_root_hash == b"\x09" * 48
    assert await backend.client.type(key("sess-1")) == b"string"  # reading does not migrate


async def test_increment_migrates_legacy_json(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await put_legacy(backend, snap(relay_count=3, total_compute_units=30))
    await store.increment_relay_count("sess-1", 10)
    assert await backend.client.type(key("sess-1")) == b"hash"
    assert await counters(store) == (4, 40)
    await store.increment_relay_count("sess-1", 10)
    assert (await counters(store))[0] == 5


async def test_save_migrates_legacy_json_key(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await put_legacy(backend, snap(relay_count=11, total_compute_units=110), indexed=True)
    await store.save(snap(state=SessionState.CLAIMING, relay_count=11, total_compute_units=110))
    assert await backend.client.type(key("sess-1")) == b"hash"
    got = await store.get("sess-1")
    assert got is not None and got.state is SessionState.CLAIMING and got.relay_count == 11
    assert await store.get_by_state(SessionState.ACTIVE) == []
    assert await ids_in(backend, f"{PREFIX}:{SUPPLIER}:state:active") == set()
    assert len(await store.get_by_state(SessionState.CLAIMING)) == 1


async def test_update_state_migrates_legacy_json_key(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await put_legacy(backend, snap(relay_count=4, total_compute_units=40), indexed=True)
    await store.update_state("sess-1", SessionState.CLAIMED)
    assert await backend.client.type(key("sess-1")) == b"hash"
    got = await store.get("sess-1")
    assert got is not None
    assert (got.state, got.relay_count, got.total_compute_units) == (SessionState.CLAIMED, 4, 40)
    assert await ids_in(backend, f"{PREFIX}:{SUPPLIER}:state:claimed") == {"sess-1"}
    assert await ids_in(backend, f"{PREFIX}:{SUPPLIER}:state:active") == set()


async def test_settlement_and_wal_updates_migrate_legacy_json(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await put_legacy(backend, snap(relay_count=2, total_compute_units=20))
    await store.update_settlement_metadata("sess-1", "expired", 77)
    await store.update_wal_position("sess-1", "9-0")
    got = await store.get("sess-1")
    assert got is not None
    assert (got.settlement_outcome, got.settlement_height, got.last_wal_entry_id) == (
        "expired",
        77,
        "9-0",
    )
    assert (got.relay_count, got.total_compute_units) == (2, 20)


async def test_get_by_supplier_mixed_formats(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await store.save(snap("sess-hash"))
    await put_legacy(backend, snap("sess-legacy"), indexed=True)
    assert [s.session_id for s in await store.get_by_supplier()] == ["sess-hash", "sess-legacy"]
    assert len(await store.get_by_state(SessionState.ACTIVE)) == 2


async def test_create_if_absent_refuses_legacy_key(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await put_legacy(backend, snap(relay_count=9))
    assert await store.create_if_absent(snap()) is False
    assert await backend.client.type(key("sess-1")) == b"string"


# --- settlement, races and counter preservation (§7.2 items 16-21) ----------------------------


async def test_settlement_metadata_round_trip(store: RedisSessionStore) -> None:
    await store.save(snap())
    await store.update_settlement_metadata("sess-1", "settled_proven", 9999)
    got = await store.get("sess-1")
    assert got is not None
    assert (got.settlement_outcome, got.settlement_height) == ("settled_proven", 9999)
    assert got.settlement_tx_hash is None


async def test_increment_race_with_update_state(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await store.save(snap())
    stores = [make_store(backend, own_client=True) for _ in range(103)]
    states = [SessionState.CLAIMING, SessionState.CLAIMED, SessionState.PROVING]

    async def task(i: int) -> None:
        if i < 100:
            await stores[i].increment_relay_count("sess-1", 10)
        else:
            await stores[i].update_state("sess-1", states[i - 100])

    await release_together(103, task)
    assert await counters(store) == (100, 1000)


async def test_increment_race_with_save(backend: RedisBackend, store: RedisSessionStore) -> None:
    await store.save(snap())
    stores = [make_store(backend, own_client=True) for _ in range(103)]

    async def task(i: int) -> None:
        if i < 100:
            await stores[i].increment_relay_count("sess-1", 5)
            return
        current = await stores[i].get("sess-1")
        assert current is not None
        current.claim_tx_hash = f"tx-{i}"
        await stores[i].save(current)

    await release_together(103, task)
    got = await store.get("sess-1")
    assert got is not None
    assert (got.relay_count, got.total_compute_units) == (100, 500)
    assert got.claim_tx_hash in {"tx-100", "tx-101", "tx-102"}


async def test_update_settlement_metadata_preserves_counters(store: RedisSessionStore) -> None:
    await store.save(snap())
    for _ in range(42):
        await store.increment_relay_count("sess-1", 10)
    await store.update_state("sess-1", SessionState.PROVED)
    await store.update_settlement_metadata("sess-1", "settled_proven", 500)
    got = await store.get("sess-1")
    assert got is not None
    assert (got.relay_count, got.total_compute_units) == (42, 420)
    assert got.settlement_outcome == "settled_proven"


async def test_update_state_does_not_clobber_counters(store: RedisSessionStore) -> None:
    await store.save(snap())
    for _ in range(100):
        await store.increment_relay_count("sess-1", 10)
    for state in (
        SessionState.CLAIMING,
        SessionState.CLAIMED,
        SessionState.PROVING,
        SessionState.PROVED,
    ):
        await store.update_state("sess-1", state)
    got = await store.get("sess-1")
    assert got is not None
    assert (got.relay_count, got.total_compute_units, got.state) == (100, 1000, SessionState.PROVED)


async def test_save_existing_key_preserves_counters(store: RedisSessionStore) -> None:
    await store.save(snap())
    for _ in range(50):
        await store.increment_relay_count("sess-1", 10)
    stale = snap(claim_tx_hash="tx-abc")  # its counters (0/0) must not be written
    await store.save(stale)
    for _ in range(25):
        await store.increment_relay_count("sess-1", 10)
    got = await store.get("sess-1")
    assert got is not None
    assert (got.relay_count, got.total_compute_units, got.claim_tx_hash) == (75, 750, "tx-abc")


# --- the seed's CRUD list ---------------------------------------------------------------------


async def test_save_and_get(store: RedisSessionStore) -> None:
    original = snap()
    await store.save(original)
    assert await store.get("sess-1") == original


async def test_get_missing_session_returns_none(store: RedisSessionStore) -> None:
    assert await store.get("does-not-exist") is None


async def test_update_state_moves_indexes(backend: RedisBackend, store: RedisSessionStore) -> None:
    await store.save(snap())
    await store.update_state("sess-1", SessionState.CLAIMING)
    assert await ids_in(backend, f"{PREFIX}:{SUPPLIER}:state:claiming") == {"sess-1"}
    assert await ids_in(backend, f"{PREFIX}:{SUPPLIER}:state:active") == set()
    assert await ids_in(backend, f"{PREFIX}:{SUPPLIER}:index") == {"sess-1"}


async def test_update_state_to_same_state_is_a_no_op_on_indexes(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await store.save(snap())
    await backend.client.srem(f"{PREFIX}:{SUPPLIER}:state:active", "sess-1")
    await store.update_state("sess-1", SessionState.ACTIVE)
    assert await ids_in(backend, f"{PREFIX}:{SUPPLIER}:state:active") == set()


async def test_update_state_missing_session(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    with pytest.raises(SessionNotFoundError, match="session not found: nope"):
        await store.update_state("nope", SessionState.CLAIMED)
    assert await backend.client.exists(key("nope")) == 0


async def test_list_by_state(store: RedisSessionStore) -> None:
    await store.save(snap("a"))
    await store.save(snap("b", SessionState.CLAIMING))
    await store.save(snap("c", SessionState.CLAIMING))
    await store.save(snap("d", SessionState.PROVED))
    assert [s.session_id for s in await store.get_by_state(SessionState.CLAIMING)] == ["b", "c"]
    assert [s.session_id for s in await store.get_by_state(SessionState.ACTIVE)] == ["a"]
    assert [s.session_id for s in await store.get_by_supplier()] == ["a", "b", "c", "d"]
    assert await store.get_by_state(SessionState.CLAIM_MISSING) == []


async def test_get_by_state_refilters_stale_index(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await store.save(snap("a", SessionState.PROVED))
    await backend.client.sadd(f"{PREFIX}:{SUPPLIER}:state:active", "a", "ghost")
    assert await store.get_by_state(SessionState.ACTIVE) == []


async def test_delete_removes_from_all_indexes(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await store.save(snap())
    await store.update_state("sess-1", SessionState.CLAIMING)
    await backend.client.sadd(f"{PREFIX}:{SUPPLIER}:state:active", "sess-1")  # a stale entry
    await store.delete("sess-1")
    assert await store.get("sess-1") is None
    assert await backend.client.keys(f"{PREFIX}:{SUPPLIER}:*") == []
    await store.delete("sess-1")  # deleting again is fine


async def test_concurrent_updates_of_different_sessions(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    stores = [make_store(backend, own_client=True) for _ in range(40)]

    async def task(i: int) -> None:
        s = stores[i]
        await s.save(snap(f"sess-{i:02d}"))
        for _ in range(5):
            await s.increment_relay_count(f"sess-{i:02d}", i + 1)
        await s.update_state(f"sess-{i:02d}", SessionState.CLAIMING)

    await release_together(40, task)
    found = await store.get_by_state(SessionState.CLAIMING)
    assert len(found) == 40
    for s in found:
        i = int(s.session_id.split("-")[1])
        assert (s.relay_count, s.total_compute_units) == (5, 5 * (i + 1))
    assert await store.get_by_state(SessionState.ACTIVE) == []


async def test_create_if_absent_rejects_second_create(store: RedisSessionStore) -> None:
    assert await store.create_if_absent(snap()) is True
    assert await store.create_if_absent(snap(service_id="other")) is False
    got = await store.get("sess-1")
    assert got is not None and got.service_id == "svc-test"


async def test_create_if_absent_concurrent_exactly_one(backend: RedisBackend) -> None:
    stores = [make_store(backend, own_client=True) for _ in range(32)]
    results = await release_together(32, lambda i: stores[i].create_if_absent(snap()))
    assert results.count(True) == 1
    assert await ids_in(backend, f"{PREFIX}:{SUPPLIER}:index") == {"sess-1"}
    assert await ids_in(backend, f"{PREFIX}:{SUPPLIER}:state:active") == {"sess-1"}


async def test_every_write_refreshes_ttls(backend: RedisBackend, store: RedisSessionStore) -> None:
    await store.create_if_absent(snap())
    for k in (key("sess-1"), f"{PREFIX}:{SUPPLIER}:index", f"{PREFIX}:{SUPPLIER}:state:active"):
        assert 3590 <= await backend.client.ttl(k) <= 3600
    ops: list[Callable[[], Awaitable[None]]] = [
        lambda: store.increment_relay_count("sess-1", 1),
        lambda: store.update_state("sess-1", SessionState.CLAIMING),
        lambda: store.update_wal_position("sess-1", "1-0"),
        lambda: store.update_settlement_metadata("sess-1", "expired", 1),
        lambda: store.save(snap(state=SessionState.CLAIMED)),
    ]
    for op in ops:
        await backend.client.expire(key("sess-1"), 5)
        await op()
        assert await backend.client.ttl(key("sess-1")) >= 3590


# --- API.md fixes 5 and 6 ---------------------------------------------------------------------


async def test_settlement_and_wal_updates_never_create_partial_hash(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    with pytest.raises(SessionNotFoundError):
        await store.update_settlement_metadata("ghost", "expired", 10)
    with pytest.raises(SessionNotFoundError):
        await store.update_wal_position("ghost", "1-0")
    assert await backend.client.exists(key("ghost")) == 0


async def test_wal_position_round_trip(store: RedisSessionStore) -> None:
    await store.save(snap())
    await store.update_wal_position("sess-1", "1700000000000-5")
    got = await store.get("sess-1")
    assert got is not None and got.last_wal_entry_id == "1700000000000-5"


@pytest.mark.parametrize("cu", [2**53 + 1, 2**63 - 1])
async def test_compute_units_exact_up_to_int64(
    backend: RedisBackend, store: RedisSessionStore, cu: int
) -> None:
    await store.save(snap())
    await store.increment_relay_count("sess-1", cu)
    assert await backend.client.hget(key("sess-1"), "total_compute_units") == str(cu).encode()
    assert await counters(store) == (1, cu)


@pytest.mark.parametrize(
    ("cu", "error"),
    [
        (2**63, ValueError),
        (2**64, ValueError),
        (-1, ValueError),
        (1.5, TypeError),
        (True, TypeError),
    ],
)
async def test_out_of_range_compute_units_rejected_before_any_counter_moves(
    store: RedisSessionStore, cu: object, error: type
) -> None:
    await store.save(snap(relay_count=5, total_compute_units=500))
    with pytest.raises(error, match="compute_units"):
        await store.increment_relay_count("sess-1", cu)  # type: ignore[arg-type]
    assert await counters(store) == (5, 500)


async def test_total_overflow_fails_without_moving_relay_count(store: RedisSessionStore) -> None:
    await store.save(snap())
    await store.increment_relay_count("sess-1", 2**63 - 1)
    with pytest.raises(StoreError, match="increment relay count") as info:
        await store.increment_relay_count("sess-1", 1)
    assert info.value.__cause__ is not None
    assert await counters(store) == (1, 2**63 - 1)


# --- closed, bad input, decode errors, Redis errors -------------------------------------------


async def test_closed_store_refuses_save_and_create_only(store: RedisSessionStore) -> None:
    await store.save(snap())
    await store.close()
    await store.close()
    with pytest.raises(ClosedError, match="session store is closed"):
        await store.save(snap())
    with pytest.raises(ClosedError, match="session store is closed"):
        await store.create_if_absent(snap("sess-2"))
    await store.increment_relay_count("sess-1", 1)
    await store.update_state("sess-1", SessionState.CLAIMING)
    assert await counters(store) == (1, 1)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda s: s.get(""), ValueError, "session_id must not be empty"),
        (lambda s: s.get(None), TypeError, "session_id must be a str"),
        (lambda s: s.get("index"), ValueError, "reserved"),
        (lambda s: s.increment_relay_count("", 1), ValueError, "session_id"),
        (lambda s: s.update_state("sess-1", "bogus"), ValueError, "unknown session state"),
        (lambda s: s.update_state("sess-1", 3), TypeError, "state must be a SessionState"),
        (lambda s: s.update_settlement_metadata("sess-1", 5, 1), TypeError, "outcome"),
        (lambda s: s.update_settlement_metadata("sess-1", "x", "1"), TypeError, "height"),
        (lambda s: s.update_wal_position("sess-1", 5), TypeError, "wal_entry_id"),
        (lambda s: s.save({"session_id": "x"}), TypeError, "SessionSnapshot"),
        (lambda s: s.delete(""), ValueError, "session_id"),
    ],
)
async def test_bad_arguments_fail_before_redis(
    backend: RedisBackend,
    call: Callable[[RedisSessionStore], Awaitable[object]],
    error: type,
    match: str,
) -> None:
    broken = RedisSessionStore(backend.broken_client(), SessionStoreConfig(SUPPLIER))
    with pytest.raises(error, match=match):
        await call(broken)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"session_id": ""}, ValueError, "session_id must not be empty"),
        ({"session_start_height": -1}, ValueError, "session_start_height"),
        ({"session_end_height": "110"}, TypeError, "session_end_height"),
        ({"relay_count": -3}, ValueError, "relay_count"),
        ({"total_compute_units": 2**64}, ValueError, "total_compute_units"),
        ({"state": "nonsense"}, ValueError, "unknown session state"),
        ({"claimed_root_hash": "ab"}, TypeError, "claimed_root_hash"),
        ({"service_id": None}, TypeError, "service_id"),
        ({"created_at": datetime(2026, 1, 1)}, ValueError, "timezone-aware"),
    ],
)
def test_invalid_snapshot_names_the_field(
    kwargs: dict[str, object], error: type, match: str
) -> None:
    base: dict[str, object] = {
        "session_id": "s",
        "supplier_operator_address": "p",
        "service_id": "svc",
        "application_address": "a",
        "session_start_height": 1,
        "session_end_height": 2,
        "state": SessionState.ACTIVE,
    }
    base.update(kwargs)
    with pytest.raises(error, match=match):
        SessionSnapshot(**base)  # type: ignore[arg-type]


def test_snapshot_state_given_as_string_is_coerced() -> None:
    s = SessionSnapshot("s", "p", "svc", "a", 1, 2, "claimed")  # type: ignore[arg-type]
    assert s.state is SessionState.CLAIMED


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("relay_count", b"12x"),
        ("total_compute_units", b"18446744073709551616"),
        ("session_end_height", b"-5"),
        ("created_at", b"yesterday"),
        ("state", b"exploded"),
        ("settlement_height", b"1.5"),
        ("service_id", b"\xff\xfe"),
    ],
)
async def test_corrupt_field_gives_decode_error_naming_it(
    backend: RedisBackend, store: RedisSessionStore, field: str, value: bytes
) -> None:
    await store.save(snap())
    await backend.client.hset(key("sess-1"), field, value)
    with pytest.raises(SessionDecodeError, match=field) as info:
        await store.get("sess-1")
    assert info.value.field == field


async def test_listing_skips_and_counts_undecodable_snapshots(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await store.save(snap("good"))
    await store.save(snap("bad"))
    await backend.client.hset(key("bad"), "relay_count", "NaN")
    before = (
        REGISTRY.get_sample_value("ha_miner_session_decode_errors_total", {"supplier": SUPPLIER})
        or 0.0
    )
    assert [s.session_id for s in await store.get_by_supplier()] == ["good"]
    after = REGISTRY.get_sample_value(
        "ha_miner_session_decode_errors_total", {"supplier": SUPPLIER}
    )
    assert after == before + 1


async def test_bad_legacy_json_and_foreign_types(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await backend.client.set(key("s-json"), b"{not json")
    with pytest.raises(SessionDecodeError, match="legacy"):
        await store.get("s-json")
    await backend.client.set(key("s-array"), b"[1, 2]")
    with pytest.raises(SessionDecodeError, match="not a JSON object"):
        await store.get("s-array")
    await backend.client.rpush(key("s-list"), b"x")
    with pytest.raises(SessionDecodeError, match="unexpected redis type"):
        await store.get("s-list")
    with pytest.raises(StoreError, match="unexpected redis type"):
        await store.save(snap("s-list"))


async def test_redis_errors_keep_their_cause(backend: RedisBackend) -> None:
    broken = RedisSessionStore(backend.broken_client(), SessionStoreConfig(SUPPLIER))
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: broken.get("sess-1"),
        lambda: broken.save(snap()),
        lambda: broken.create_if_absent(snap()),
        lambda: broken.increment_relay_count("sess-1", 1),
        lambda: broken.update_state("sess-1", SessionState.CLAIMED),
        lambda: broken.delete("sess-1"),
        lambda: broken.get_by_supplier(),
    ]
    for call in calls:
        with pytest.raises(StoreError) as info:
            await call()
        assert isinstance(info.value, RelayMinerError)
        assert info.value.__cause__ is not None


async def test_scripts_reload_after_script_flush(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await store.save(snap())
    await backend.client.script_flush()
    await store.increment_relay_count("sess-1", 3)
    await backend.client.script_flush()
    assert await counters(store) == (1, 3)


async def test_pipelined_reads_survive_script_flush(
    backend: RedisBackend, store: RedisSessionStore
) -> None:
    await store.save(snap("a"))
    await store.save(snap("b"))
    await backend.client.script_flush()
    assert len(await store.get_by_supplier()) == 2


def test_store_satisfies_protocol(store: RedisSessionStore) -> None:
    assert isinstance(store, SessionStore)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"supplier_address": ""}, ValueError, "supplier_address"),
        ({"supplier_address": "p", "session_ttl_seconds": 0}, ValueError, "session_ttl_seconds"),
        ({"supplier_address": "p", "session_ttl_seconds": 1.5}, TypeError, "session_ttl_seconds"),
        ({"supplier_address": "p", "key_prefix": ""}, ValueError, "key_prefix"),
    ],
)
def test_bad_store_config_names_the_field(
    kwargs: dict[str, object], error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        SessionStoreConfig(**kwargs)  # type: ignore[arg-type]


async def test_default_prefix_matches_key_builder(backend: RedisBackend) -> None:
    from relayminer import KeyBuilder

    store = RedisSessionStore(backend.client, SessionStoreConfig("pokt1sup"))
    kb = KeyBuilder()
    assert store.session_key("s1") == kb.miner_session_key("pokt1sup", "s1")
    assert store.index_key() == kb.miner_sessions_index_key("pokt1sup")
    assert store.state_index_key(SessionState.PROVED) == kb.miner_session_state_index_key(
        "pokt1sup", "proved"
    )
    await asyncio.gather(store.save(snap("s1")), store.save(snap("s2")))
    assert len(await store.get_by_supplier()) == 2
