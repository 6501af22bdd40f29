"""Characterization of the SessionCoordinator.

Go: pocket-relay-miner `miner/session_coordinator.go`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from relayminer import (
    ClosedError,
    RedisSessionStore,
    SessionCoordinator,
    SessionNotFoundError,
    SessionSnapshot,
    SessionState,
    SessionStoreConfig,
)
from tests.conftest import RedisBackend
from tests.helpers import release_together

# Each characterization test runs three times per session (shuffled with the rest).
pytestmark = pytest.mark.repeat(3)

SUPPLIER = "pokt1test"


def make_store(
    backend: RedisBackend, supplier: str = SUPPLIER, *, own_client: bool = False
) -> RedisSessionStore:
    client = backend.new_client() if own_client else backend.client
    return RedisSessionStore(client, SessionStoreConfig(supplier, session_ttl_seconds=3600))


class Recorder:
    """Thread-safe enough for asyncio: records callback invocations."""

    def __init__(self) -> None:
        self.created: list[SessionSnapshot] = []
        self.terminal: list[tuple[str, SessionState]] = []

    def on_created(self, snapshot: SessionSnapshot) -> None:
        self.created.append(snapshot)

    async def on_terminal(self, session_id: str, state: SessionState) -> None:
        self.terminal.append((session_id, state))


@pytest.fixture
def store(backend: RedisBackend) -> RedisSessionStore:
    return make_store(backend)


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def coord(store: RedisSessionStore, rec: Recorder) -> SessionCoordinator:
    c = SessionCoordinator(store, SUPPLIER)
    c.set_on_session_created_callback(rec.on_created)
    c.set_on_session_terminal_callback(rec.on_terminal)
    return c


async def relay(
    c: SessionCoordinator,
    sid: str = "sess-1",
    cu: int = 100,
    *,
    supplier: str = SUPPLIER,
    service: str = "svc",
    app: str = "pokt1app",
) -> None:
    await c.on_relay_processed(sid, cu, supplier, service, app, 100, 110)


# --- §7.3 ---------------------------------------------------------------------------------


async def test_concurrent_first_relay_exactly_one_create_callback(backend: RedisBackend) -> None:
    rec = Recorder()
    coords = []
    for _ in range(32):
        c = SessionCoordinator(make_store(backend, own_client=True), SUPPLIER)
        c.set_on_session_created_callback(rec.on_created)
        coords.append(c)
    await release_together(32, lambda i: relay(coords[i], "sess-race", 7, service="develop-http"))
    assert [s.session_id for s in rec.created] == ["sess-race"]
    got = await make_store(backend).get("sess-race")
    assert got is not None
    assert got.state is SessionState.ACTIVE
    assert (got.supplier_operator_address, got.service_id) == (SUPPLIER, "develop-http")
    assert (got.relay_count, got.total_compute_units) == (32, 224)


async def test_on_session_created_idempotent_on_repeat_call(
    coord: SessionCoordinator, rec: Recorder
) -> None:
    await coord.on_session_created("sess-1", SUPPLIER, "svc", "app", 100, 110)
    await coord.on_session_created("sess-1", SUPPLIER, "svc", "app", 100, 110)
    assert len(rec.created) == 1
    assert rec.created[0].state is SessionState.ACTIVE and rec.created[0].relay_count == 0


async def test_create_if_absent_rejects_second_create_at_store_level(
    store: RedisSessionStore,
) -> None:
    s = SessionSnapshot("sess-1", SUPPLIER, "svc", "app", 100, 110, SessionState.ACTIVE)
    assert await store.create_if_absent(s) is True
    assert await store.create_if_absent(s) is False


# --- the seed's list ------------------------------------------------------------------------


async def test_discover_new_session(
    coord: SessionCoordinator, store: RedisSessionStore, rec: Recorder
) -> None:
    await relay(coord, "sess-new", 100)
    got = await store.get("sess-new")
    assert got is not None
    assert (got.state, got.relay_count, got.total_compute_units) == (SessionState.ACTIVE, 1, 100)
    assert (got.session_start_height, got.session_end_height) == (100, 110)
    assert got.application_address == "pokt1app"
    assert len(rec.created) == 1 and rec.created[0].session_id == "sess-new"


async def test_route_relay_to_existing_session(
    coord: SessionCoordinator, store: RedisSessionStore, rec: Recorder
) -> None:
    await relay(coord, "sess-1", 10)
    await relay(coord, "sess-1", 20)
    await relay(coord, "sess-2", 5)
    s1, s2 = await store.get("sess-1"), await store.get("sess-2")
    assert s1 is not None and s2 is not None
    assert (s1.relay_count, s1.total_compute_units) == (2, 30)
    assert (s2.relay_count, s2.total_compute_units) == (1, 5)
    assert sorted(s.session_id for s in rec.created) == ["sess-1", "sess-2"]


async def test_multiple_suppliers_isolated(backend: RedisBackend) -> None:
    a = SessionCoordinator(make_store(backend, "pokt1a"), "pokt1a")
    b = SessionCoordinator(make_store(backend, "pokt1b"), "pokt1b")
    await relay(a, "sess-shared", 10, supplier="pokt1a")
    await relay(b, "sess-shared", 20, supplier="pokt1b")
    await relay(b, "sess-shared", 20, supplier="pokt1b")
    sa = await make_store(backend, "pokt1a").get("sess-shared")
    sb = await make_store(backend, "pokt1b").get("sess-shared")
    assert sa is not None and sb is not None
    assert (sa.relay_count, sa.total_compute_units, sa.supplier_operator_address) == (
        1,
        10,
        "pokt1a",
    )
    assert (sb.relay_count, sb.total_compute_units, sb.supplier_operator_address) == (
        2,
        40,
        "pokt1b",
    )
    assert [s.session_id for s in await make_store(backend, "pokt1a").get_by_supplier()] == [
        "sess-shared"
    ]


@pytest.mark.parametrize(("supplier", "service"), [("", "svc"), (SUPPLIER, "")])
async def test_invalid_session_data_does_not_create(
    coord: SessionCoordinator, store: RedisSessionStore, rec: Recorder, supplier: str, service: str
) -> None:
    with pytest.raises(SessionNotFoundError, match="session not found: sess-x"):
        await relay(coord, "sess-x", supplier=supplier, service=service)
    assert await store.get("sess-x") is None
    assert rec.created == []


async def test_empty_application_address_is_allowed(
    coord: SessionCoordinator, store: RedisSessionStore
) -> None:
    await relay(coord, "sess-1", app="")
    got = await store.get("sess-1")
    assert got is not None and got.application_address == "" and got.relay_count == 1


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("", 1, SUPPLIER, "svc", "app", 1, 2), ValueError, "session_id"),
        (("s", -1, SUPPLIER, "svc", "app", 1, 2), ValueError, "compute_units"),
        (("s", 2**63, SUPPLIER, "svc", "app", 1, 2), ValueError, "compute_units"),
        (("s", 1, None, "svc", "app", 1, 2), TypeError, "supplier_address"),
        (("s", 1, SUPPLIER, "svc", 5, 1, 2), TypeError, "application_address"),
        (("s", 1, SUPPLIER, "svc", "app", "1", 2), TypeError, "session_start_height"),
        (("s", 1, SUPPLIER, "svc", "app", 1, -2), ValueError, "session_end_height"),
    ],
)
async def test_bad_relay_arguments_fail_before_redis(
    backend: RedisBackend, args: tuple[Any, ...], error: type, match: str
) -> None:
    broken = SessionCoordinator(
        RedisSessionStore(backend.broken_client(), SessionStoreConfig(SUPPLIER)), SUPPLIER
    )
    with pytest.raises(error, match=match):
        await broken.on_relay_processed(*args)


@pytest.mark.parametrize(
    "state", [SessionState.PROVED, SessionState.CLAIM_WINDOW_CLOSED, SessionState.CLAIM_SKIPPED]
)
async def test_relay_for_terminal_session_is_skipped(
    coord: SessionCoordinator, store: RedisSessionStore, state: SessionState
) -> None:
    await relay(coord, "sess-1", 100)
    await store.update_state("sess-1", state)
    await relay(coord, "sess-1", 100)  # no error: a late relay is skipped
    got = await store.get("sess-1")
    assert got is not None and (got.relay_count, got.total_compute_units) == (1, 100)


async def test_relay_for_expired_session_recreates_it(
    backend: RedisBackend, coord: SessionCoordinator, store: RedisSessionStore, rec: Recorder
) -> None:
    # An expired snapshot (TTL elapsed) is simply gone: the next relay starts a new one.
    await relay(coord, "sess-1", 100)
    await backend.client.delete(store.session_key("sess-1"))
    await relay(coord, "sess-1", 50)
    got = await store.get("sess-1")
    assert got is not None and (got.relay_count, got.total_compute_units) == (1, 50)
    assert len(rec.created) == 2


async def test_relay_accumulation(coord: SessionCoordinator, store: RedisSessionStore) -> None:
    for i in range(25):
        await relay(coord, "sess-acc", i + 1)
    got = await store.get("sess-acc")
    assert got is not None and (got.relay_count, got.total_compute_units) == (25, 325)


async def test_concurrent_relays_many_sessions_exact_counts(backend: RedisBackend) -> None:
    rec = Recorder()
    coords = []
    for _ in range(60):
        c = SessionCoordinator(make_store(backend, own_client=True), SUPPLIER)
        c.set_on_session_created_callback(rec.on_created)
        coords.append(c)
    await release_together(60, lambda i: relay(coords[i], f"sess-{i % 3}", 10))
    assert sorted(s.session_id for s in rec.created) == ["sess-0", "sess-1", "sess-2"]
    store = make_store(backend)
    for n in range(3):
        got = await store.get(f"sess-{n}")
        assert got is not None and (got.relay_count, got.total_compute_units) == (20, 200)


# --- claim, proof and terminal transitions ---------------------------------------------------


async def test_on_session_claimed_records_root_and_tx(
    coord: SessionCoordinator, store: RedisSessionStore, rec: Recorder
) -> None:
    await relay(coord)
    await coord.on_session_claimed("sess-1", b"\x07" * 48, "CLAIMTX")
    got = await store.get("sess-1")
    assert got is not None
    assert (got.state, got.claimed_root_hash, got.claim_tx_hash) == (
        SessionState.CLAIMED,
        b"\x07" * 48,
        "CLAIMTX",
    )
    assert got.relay_count == 1
    assert rec.terminal == []


async def test_on_proof_submitted_keeps_state(
    coord: SessionCoordinator, store: RedisSessionStore
) -> None:
    await relay(coord)
    await store.update_state("sess-1", SessionState.PROVING)
    await coord.on_proof_submitted("sess-1", "PROOFTX")
    got = await store.get("sess-1")
    assert got is not None and (got.state, got.proof_tx_hash) == (SessionState.PROVING, "PROOFTX")


async def test_claim_and_proof_of_missing_session(coord: SessionCoordinator) -> None:
    with pytest.raises(SessionNotFoundError):
        await coord.on_session_claimed("ghost", b"\x00" * 48, "tx")
    with pytest.raises(SessionNotFoundError):
        await coord.on_proof_submitted("ghost", "tx")


@pytest.mark.parametrize(
    ("method", "state"),
    [
        ("on_claim_window_closed", SessionState.CLAIM_WINDOW_CLOSED),
        ("on_proof_window_closed", SessionState.PROOF_WINDOW_CLOSED),
        ("on_probabilistic_proved", SessionState.PROBABILISTIC_PROVED),
        ("on_claim_skipped", SessionState.CLAIM_SKIPPED),
        ("on_session_proved", SessionState.PROVED),
        ("on_claim_tx_error", SessionState.CLAIM_TX_ERROR),
        ("on_claim_missing", SessionState.CLAIM_MISSING),
        ("on_proof_tx_error", SessionState.PROOF_TX_ERROR),
    ],
)
async def test_terminal_markers_set_state_and_fire_callback(
    coord: SessionCoordinator,
    store: RedisSessionStore,
    rec: Recorder,
    method: str,
    state: SessionState,
) -> None:
    await relay(coord)
    await getattr(coord, method)("sess-1")
    got = await store.get("sess-1")
    assert got is not None and got.state is state
    assert rec.terminal == [("sess-1", state)]
    await relay(coord)  # afterwards relays are skipped
    got = await store.get("sess-1")
    assert got is not None and got.relay_count == 1


@pytest.mark.parametrize(
    "method",
    [
        "on_claim_window_closed",
        "on_proof_window_closed",
        "on_probabilistic_proved",
        "on_claim_skipped",
    ],
)
async def test_unguarded_markers_raise_for_missing_session_without_callback(
    coord: SessionCoordinator, rec: Recorder, method: str
) -> None:
    with pytest.raises(SessionNotFoundError):
        await getattr(coord, method)("ghost")
    assert rec.terminal == []


async def test_on_session_proved_swallows_store_error_but_fires_callback(
    coord: SessionCoordinator, rec: Recorder
) -> None:
    await coord.on_session_proved("ghost")
    assert rec.terminal == [("ghost", SessionState.PROVED)]


async def test_claim_tx_error_guarded_by_recorded_claim(
    coord: SessionCoordinator, store: RedisSessionStore, rec: Recorder
) -> None:
    await relay(coord)
    await coord.on_session_claimed("sess-1", b"\x01" * 48, "TX")
    await coord.on_claim_tx_error("sess-1")
    got = await store.get("sess-1")
    assert got is not None and got.state is SessionState.CLAIMED
    await relay(coord, "sess-2")
    s2 = await store.get("sess-2")
    assert s2 is not None
    s2.claim_tx_hash = "OTHER-REPLICA"
    s2.state = SessionState.CLAIMING
    await store.save(s2)
    await coord.on_claim_tx_error("sess-2")
    got = await store.get("sess-2")
    assert got is not None and got.state is SessionState.CLAIMING
    assert rec.terminal == []


@pytest.mark.parametrize("done", [SessionState.PROVED, SessionState.PROBABILISTIC_PROVED])
async def test_claim_missing_and_proof_tx_error_do_not_overwrite_success(
    coord: SessionCoordinator, store: RedisSessionStore, rec: Recorder, done: SessionState
) -> None:
    await relay(coord)
    await store.update_state("sess-1", done)
    await coord.on_claim_missing("sess-1")
    await coord.on_proof_tx_error("sess-1")
    got = await store.get("sess-1")
    assert got is not None and got.state is done
    assert rec.terminal == []


async def test_proof_tx_error_guarded_by_recorded_proof(
    coord: SessionCoordinator, store: RedisSessionStore, rec: Recorder
) -> None:
    await relay(coord)
    await store.update_state("sess-1", SessionState.PROVING)
    await coord.on_proof_submitted("sess-1", "PROOFTX")
    await coord.on_proof_tx_error("sess-1")
    got = await store.get("sess-1")
    assert got is not None and got.state is SessionState.PROVING
    assert rec.terminal == []


async def test_guarded_marker_of_missing_session_raises(coord: SessionCoordinator) -> None:
    with pytest.raises(SessionNotFoundError):
        await coord.on_claim_tx_error("ghost")


async def test_guard_read_failure_falls_through_to_marking(
    backend: RedisBackend, store: RedisSessionStore, rec: Recorder
) -> None:
    c = SessionCoordinator(store, SUPPLIER)
    c.set_on_session_terminal_callback(rec.on_terminal)
    await relay(c)
    await backend.client.hset(store.session_key("sess-1"), "relay_count", "garbage")
    await c.on_claim_missing("sess-1")  # the guard's read fails to decode: marks anyway
    assert await backend.client.hget(store.session_key("sess-1"), "state") == b"claim_missing"
    assert rec.terminal == [("sess-1", SessionState.CLAIM_MISSING)]


# --- callbacks ----------------------------------------------------------------------------


async def test_async_created_callback_and_plain_terminal_callback(store: RedisSessionStore) -> None:
    seen: list[str] = []

    async def created(s: SessionSnapshot) -> None:
        seen.append(f"created:{s.session_id}")

    c = SessionCoordinator(store, SUPPLIER)
    c.set_on_session_created_callback(created)
    c.set_on_session_terminal_callback(lambda sid, st: seen.append(f"{st.value}:{sid}"))
    await relay(c)
    await c.on_claim_skipped("sess-1")
    assert seen == ["created:sess-1", "claim_skipped:sess-1"]


async def test_failing_callbacks_are_logged_not_raised(
    store: RedisSessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("callback exploded")

    c = SessionCoordinator(store, SUPPLIER)
    c.set_on_session_created_callback(boom)
    c.set_on_session_terminal_callback(boom)
    await relay(c)
    await c.on_claim_window_closed("sess-1")
    got = await store.get("sess-1")
    assert (
        got is not None and got.state is SessionState.CLAIM_WINDOW_CLOSED and got.relay_count == 1
    )
    assert sum("session callback failed" in r.getMessage() for r in caplog.records) == 2


async def test_no_callbacks_set(store: RedisSessionStore) -> None:
    c = SessionCoordinator(store, SUPPLIER)
    await relay(c)
    await c.on_session_proved("sess-1")
    got = await store.get("sess-1")
    assert got is not None and got.state is SessionState.PROVED


async def test_store_get_failure_during_relay_still_counts(
    backend: RedisBackend, store: RedisSessionStore, rec: Recorder
) -> None:
    # The pre-read is only an optimisation: a snapshot that fails to decode does not block counting.
    c = SessionCoordinator(store, SUPPLIER)
    c.set_on_session_created_callback(rec.on_created)
    await relay(c)
    await backend.client.hset(store.session_key("sess-1"), "created_at", "not-a-time")
    await relay(c)
    assert await backend.client.hget(store.session_key("sess-1"), "relay_count") == b"2"
    assert len(rec.created) == 1


# --- closed -------------------------------------------------------------------------------


async def test_closed_coordinator_refuses_every_on_method(coord: SessionCoordinator) -> None:
    await coord.close()
    await coord.close()
    calls: list[Callable[[], Awaitable[None]]] = [
        lambda: relay(coord),
        lambda: coord.on_session_created("s", SUPPLIER, "svc", "app", 1, 2),
        lambda: coord.on_session_claimed("s", b"\x00" * 48, "tx"),
        lambda: coord.on_proof_submitted("s", "tx"),
        lambda: coord.on_session_proved("s"),
        lambda: coord.on_claim_window_closed("s"),
        lambda: coord.on_claim_tx_error("s"),
        lambda: coord.on_claim_missing("s"),
        lambda: coord.on_proof_window_closed("s"),
        lambda: coord.on_proof_tx_error("s"),
        lambda: coord.on_probabilistic_proved("s"),
        lambda: coord.on_claim_skipped("s"),
    ]
    for call in calls:
        with pytest.raises(ClosedError, match="session coordinator is closed"):
            await call()
    coord.set_on_session_created_callback(None)  # setters still work after close


def test_constructor_validates(store: RedisSessionStore) -> None:
    with pytest.raises(TypeError, match="SessionStore"):
        SessionCoordinator(object(), SUPPLIER)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="supplier_address"):
        SessionCoordinator(store, "")


async def test_claiming_and_proving_are_recorded_without_callbacks(
    coord: SessionCoordinator, store: RedisSessionStore, rec: Recorder
) -> None:
    await relay(coord)
    await coord.on_session_claiming("sess-1")
    got = await store.get("sess-1")
    assert got is not None and got.state is SessionState.CLAIMING
    await coord.on_session_claimed("sess-1", b"\x02" * 48, "TX")
    await coord.on_session_proving("sess-1")
    got = await store.get("sess-1")
    assert got is not None and got.state is SessionState.PROVING
    assert rec.terminal == []
    await coord.close()
    with pytest.raises(ClosedError):
        await coord.on_session_proving("sess-1")
