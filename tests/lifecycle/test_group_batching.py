"""A claim or proof group is written in a fixed number of round trips, whatever its size
(``docs/lifecycle.md``, "Capacity of one replica"), and one session's failure stays its own.

Also the group writes underneath: ``run_script_calls``, ``RedisSessionStore.write_states``,
the coordinator's ``on_sessions_*``, ``RebroadcastStore.put_many`` and
``RedisDeduplicator.cleanup_sessions``, on both backends."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from relayminer.chain.sim.config import ServiceConfig
from relayminer.errors import LeaseLostError, SessionNotFoundError, StoreError
from relayminer.keys import KeyBuilder
from relayminer.lifecycle.manager import LifecycleManager
from relayminer.lifecycle.rebroadcast import RebroadcastEntry, RebroadcastStore
from relayminer.runtime.leases import Fence
from relayminer.runtime.script_batch import ScriptCall, run_script_calls
from relayminer.sessions.coordinator import SessionCoordinator
from relayminer.sessions.dedup import DeduplicatorConfig, RedisDeduplicator
from relayminer.sessions.model import SessionSnapshot, SessionState, encode_legacy_json
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig, StateWrite
from relayminer.smst.journal import journal_keys
from tests.conftest import RedisBackend
from tests.lifecycle.support import ALWAYS, SUP1, SVC, World, chain_config

# --- round trips of a pass ------------------------------------------------------------------


class RoundTrips:
    """Counts the round trips a client makes: each command, each pipeline as one, and each
    command a pipeline sends on its own before it."""

    def __init__(self, client: Redis) -> None:
        self.count = 0
        execute_command = client.execute_command
        make_pipeline: Callable[..., Any] = client.pipeline

        async def counted_command(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await execute_command(*args, **kwargs)

        def counted_pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = make_pipeline(*args, **kwargs)
            execute = pipe.execute

            async def counted_execute(*eargs: Any, **ekwargs: Any) -> Any:
                self.count += 1
                return await execute(*eargs, **ekwargs)

            async def counted_immediate(*cargs: Any, **ckwargs: Any) -> Any:
                self.count += 1  # e.g. redis-py's SCRIPT EXISTS ahead of a pipeline
                return await immediate(*cargs, **ckwargs)

            immediate = pipe.immediate_execute_command
            pipe.execute = counted_execute
            pipe.immediate_execute_command = counted_immediate
            return pipe

        client.execute_command = counted_command  # type: ignore[method-assign]
        client.pipeline = counted_pipeline  # type: ignore[method-assign]


async def _pass_round_trips(backend: RedisBackend, apps: int) -> dict[str, int]:
    """Round trips of the supplier's lifecycle client in the pass that claims, the pass after
    it (the claims found on chain), and the pass that proves ``apps`` sessions (one per
    application, 3 relays each)."""
    await backend.client.flushall()
    names = [f"pokt1app{i:02d}" for i in range(apps)]
    config = dataclasses.replace(
        chain_config(ALWAYS),
        applications=dict.fromkeys(names, (SVC,)),
        suppliers={SUP1: (SVC,)},
        services={SVC: ServiceConfig(compute_units_per_relay=10)},
    )
    world = await World.create(backend.client, config)
    world.suppliers = (SUP1,)
    del world.managers["pokt1sup2"], world.workers["pokt1sup2"]
    client = backend.new_client()
    counter = RoundTrips(client)
    world.managers[SUP1] = LifecycleManager(client, SUP1, world.chain)
    for app in names:
        await world.relays(SUP1, 3, app=app, height=1)
    counts: dict[str, int] = {}
    while "prove" not in counts:
        before = counter.count
        await world.step()
        report = world.reports[-1]
        if "claim" in counts and "after_claim" not in counts:
            # the reconciler finds every claim on chain and drops its rebroadcast record
            counts["after_claim"] = counter.count - before
        if report.claimed:
            assert len(report.claimed) == apps
            counts["claim"] = counter.count - before
        if report.proved:
            assert len(report.proved) == apps
            counts["prove"] = counter.count - before
    await world.close()
    return counts


async def test_a_group_costs_the_same_round_trips_whatever_its_size(
    backend: RedisBackend,
) -> None:
    small = await _pass_round_trips(backend, 2)
    large = await _pass_round_trips(backend, 12)
    assert large == small, (small, large)
    assert small["claim"] <= 12 and small["prove"] <= 12 and small["after_claim"] <= 12, small


async def test_one_sessions_failure_in_a_group_is_its_own(backend: RedisBackend) -> None:
    """A corrupt journal fails its session's claim (recorded, retried at the next pass); the
    rest of its group is claimed and proved."""
    world = await World.create(backend.client, chain_config(ALWAYS))
    try:
        sid_a = await world.relays(SUP1, 3, height=1)
        sid_b = await world.relays(SUP1, 3, service="svc2", height=1)
        await world.run_to(5)
        leaves = journal_keys(SUP1, sid_b).leaves
        await backend.client.hset(leaves, b"not-a-relay-hash", b"\x05relay")
        await world.chain.produce_block()
        report = await world.managers[SUP1].pass_at(6)
        assert report.claimed == [sid_a]
        assert any(sid_b in e and "corrupt leaf journal" in e for e in report.errors)
        assert (await world.session(SUP1, sid_b)).state is SessionState.CLAIMING
    finally:
        await world.close()


# --- the group writes -----------------------------------------------------------------------

SUPPLIER = "pokt1group"


async def test_run_script_calls_returns_each_reply_or_error_in_order(
    backend: RedisBackend,
) -> None:
    r = backend.client
    await r.set("k1", "v1")
    await r.set("k2", "not-a-list")
    script = r.register_script("return redis.call('GET', KEYS[1])")
    llen = r.register_script("return redis.call('LLEN', KEYS[1])")
    calls = [
        ScriptCall(script, ["k1"], []),
        ScriptCall(llen, ["k2"], []),
        ScriptCall(script, ["k3"], []),
    ]
    for one_by_one in (False, True):
        first, error, missing = await run_script_calls(r, calls, one_by_one=one_by_one)
        assert first == b"v1" and missing is None
        assert isinstance(error, ResponseError) and "WRONGTYPE" in str(error)
    assert await run_script_calls(r, []) == []


async def test_run_script_calls_is_one_round_trip_and_keeps_the_order_without_loaded_scripts(
    backend: RedisBackend,
) -> None:
    """A batch is one pipeline (its scripts loaded at its head, no SCRIPT EXISTS before it),
    and its calls run once each, in order, also on a server that lost its scripts."""
    r = backend.client
    incr = r.register_script("return redis.call('INCR', KEYS[1])")
    get = r.register_script("return redis.call('GET', KEYS[1])")
    calls = [
        ScriptCall(incr, ["n1"], []),
        ScriptCall(incr, ["n2"], []),
        ScriptCall(get, ["n1"], []),
    ]
    trips = RoundTrips(r)
    for expected in (1, 2):
        await r.script_flush()
        trips.count = 0
        assert await run_script_calls(r, calls) == [expected, expected, str(expected).encode()]
        assert trips.count == 1
    assert await run_script_calls(r, calls) == [3, 3, b"3"]
    assert trips.count == 2
    assert await r.mget("n1", "n2") == [b"3", b"3"]


def _snapshot(sid: str, state: SessionState = SessionState.ACTIVE) -> SessionSnapshot:
    return SessionSnapshot(
        session_id=sid,
        supplier_operator_address=SUPPLIER,
        service_id="svc",
        application_address="pokt1app",
        session_start_height=1,
        session_end_height=4,
        state=state,
    )


def _store(r: Redis, fence: Fence | None = None) -> RedisSessionStore:
    return RedisSessionStore(r, SessionStoreConfig(SUPPLIER), fence=fence)


async def test_write_states_writes_each_session_with_its_own_outcome(
    backend: RedisBackend,
) -> None:
    r = backend.client
    store = _store(r)
    for sid in ("a", "b"):
        await store.save(_snapshot(sid))
    legacy = _snapshot("legacy", SessionState.CLAIMING)
    await r.set(store.session_key("legacy"), encode_legacy_json(legacy))
    root = b"\x01" * 48
    out = await store.write_states(
        [
            StateWrite("a", SessionState.CLAIMED, (("claimed_root_hash", root),)),
            StateWrite("missing", SessionState.CLAIMING),
            StateWrite("b", SessionState.CLAIMING),
            StateWrite("legacy", SessionState.CLAIMED, (("claim_tx_hash", "AB"),)),
        ]
    )
    assert out["a"] is None and out["b"] is None and out["legacy"] is None
    assert isinstance(out["missing"], SessionNotFoundError)
    a, b, migrated = [await store.get(sid) for sid in ("a", "b", "legacy")]
    assert a is not None and a.state is SessionState.CLAIMED and a.claimed_root_hash == root
    assert b is not None and b.state is SessionState.CLAIMING
    assert migrated is not None and migrated.state is SessionState.CLAIMED
    assert migrated.claim_tx_hash == "AB" and await r.type(store.session_key("legacy")) == b"hash"
    assert await store.ids_by_states([SessionState.CLAIMED]) == ["a", "legacy"]
    assert await store.ids_by_states([SessionState.ACTIVE]) == []


def _cut_the_store_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The session store's next batch of script calls finds Redis unreachable."""

    async def unreachable(*_args: Any, **_kwargs: Any) -> Any:
        raise RedisConnectionError("connection reset")

    monkeypatch.setattr("relayminer.sessions.store.run_script_calls", unreachable)


async def test_write_states_is_fenced_and_reports_a_lost_connection(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = backend.client
    await r.set("lease", "mine")
    store = _store(r, Fence("lease", "mine"))
    await store.save(_snapshot("a"))
    await r.set("lease", "theirs")
    with pytest.raises(LeaseLostError):
        await store.write_states([StateWrite("a", SessionState.CLAIMING)])
    got = await store.get("a")
    assert got is not None and got.state is SessionState.ACTIVE
    _cut_the_store_off(monkeypatch)
    with pytest.raises(StoreError, match="connection reset"):
        await store.write_states([StateWrite("a", SessionState.CLAIMING)])


async def test_update_settlements_writes_each_session_with_its_own_outcome(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = backend.client
    await r.set("lease", "mine")
    store = _store(r, Fence("lease", "mine"))
    await store.save(_snapshot("a", SessionState.PROVED))
    legacy = _snapshot("legacy", SessionState.CLAIMED)
    await r.set(store.session_key("legacy"), encode_legacy_json(legacy))
    out = await store.update_settlements(
        [("a", "settled_proven", 14), ("missing", "expired", 14), ("legacy", "expired", 15)]
    )
    assert out["a"] is None and out["legacy"] is None
    assert isinstance(out["missing"], SessionNotFoundError)
    a, migrated = await store.get("a"), await store.get("legacy")
    assert a is not None and (a.settlement_outcome, a.settlement_height) == ("settled_proven", 14)
    assert a.state is SessionState.PROVED  # the state is not touched
    assert migrated is not None and migrated.settlement_outcome == "expired"
    assert await r.type(store.session_key("legacy")) == b"hash"
    await r.set("lease", "theirs")
    with pytest.raises(LeaseLostError):
        await store.update_settlements([("a", "expired", 16)])
    got = await store.get("a")
    assert got is not None and got.settlement_outcome == "settled_proven"
    _cut_the_store_off(monkeypatch)
    with pytest.raises(StoreError, match="connection reset"):
        await store.update_settlements([("a", "expired", 16)])


async def test_rebroadcast_delete_many_drops_a_group_in_one_call(backend: RedisBackend) -> None:
    r = backend.client
    await r.set("lease", "mine")
    store = RebroadcastStore(r, SUPPLIER, fence=Fence("lease", "mine"))
    entries = [RebroadcastEntry(sid, b"msg", 7, "TX", "TX", "svc") for sid in ("a", "b", "c")]
    await store.put_many("claim", 4, entries)
    await store.delete_many("claim", 4, ["a", "b"])
    await store.delete_many("claim", 4, [])
    assert set(await store.entries("claim", 4)) == {"c"} and await store.groups("claim") == [4]
    await r.set("lease", "theirs")
    with pytest.raises(LeaseLostError):
        await store.delete_many("claim", 4, ["c"])
    await r.set("lease", "mine")
    await store.delete_many("claim", 4, ["c"])  # the group empties: it leaves the index
    assert await store.groups("claim") == []
    fresh = RebroadcastStore(r, SUPPLIER, fence=Fence("lease", "mine"))
    assert await fresh.groups("claim") == []


class _OtherStore:
    """A session store that is not the Redis one (the coordinator's per-session path)."""

    def __init__(self, inner: RedisSessionStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.parametrize("redis_store", [True, False], ids=["redis-store", "other-store"])
async def test_the_coordinators_group_transitions(backend: RedisBackend, redis_store: bool) -> None:
    inner = _store(backend.client)
    store: Any = inner if redis_store else _OtherStore(inner)
    coordinator = SessionCoordinator(store, SUPPLIER)
    ended: list[tuple[str, SessionState]] = []
    coordinator.set_on_session_terminal_callback(lambda sid, st: ended.append((sid, st)))
    for sid in ("a", "b", "c", "d"):
        await inner.save(_snapshot(sid))
    out = await coordinator.on_sessions_claiming(["a", "b", "c", "d", "gone"])
    assert isinstance(out.pop("gone"), SessionNotFoundError) and set(out.values()) == {None}
    root = b"\x02" * 48
    out = await coordinator.on_sessions_claimed([("a", root, "TXA"), ("b", root, "")])
    assert out == {"a": None, "b": None}
    assert await coordinator.on_sessions_proving(["a"]) == {"a": None}
    await coordinator.on_sessions_proved([("a", "PROOF"), ("gone", "X")])
    out = await coordinator.on_sessions_ended(["c", "gone"], SessionState.CLAIM_SKIPPED)
    assert out["c"] is None and isinstance(out["gone"], SessionNotFoundError)
    await coordinator.on_sessions_ended(["b"], SessionState.PROBABILISTIC_PROVED)
    with pytest.raises(ValueError, match="not ended for a whole group"):
        await coordinator.on_sessions_ended(["d"], SessionState.PROVED)
    with pytest.raises(TypeError):
        await coordinator.on_sessions_claimed([("d", "not-bytes", "TX")])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        await coordinator.on_sessions_proved([("d", b"not-str")])  # type: ignore[list-item]
    await coordinator.on_sessions_ended(["d"], SessionState.CLAIM_WINDOW_CLOSED)
    got = {sid: await inner.get(sid) for sid in ("a", "b", "c", "d")}
    assert {sid: s.state for sid, s in got.items() if s} == {
        "a": SessionState.PROVED,
        "b": SessionState.PROBABILISTIC_PROVED,
        "c": SessionState.CLAIM_SKIPPED,
        "d": SessionState.CLAIM_WINDOW_CLOSED,
    }
    a = got["a"]
    assert a is not None and (a.claimed_root_hash, a.claim_tx_hash) == (root, "TXA")
    assert a.proof_tx_hash == "PROOF"
    # the callback runs for every proof (it is on its way whatever Redis says), and for the
    # other ended sessions that were written
    assert ended == [
        ("a", SessionState.PROVED),
        ("gone", SessionState.PROVED),
        ("c", SessionState.CLAIM_SKIPPED),
        ("b", SessionState.PROBABILISTIC_PROVED),
        ("d", SessionState.CLAIM_WINDOW_CLOSED),
    ]


async def test_rebroadcast_put_many_and_dedup_cleanup_sessions(backend: RedisBackend) -> None:
    r = backend.client
    await r.set("lease", "mine")
    store = RebroadcastStore(r, SUPPLIER, fence=Fence("lease", "mine"))
    entries = [RebroadcastEntry(sid, b"msg", 7, "TX", "TX", "svc") for sid in ("a", "b")]
    await store.put_many("claim", 4, entries)
    await store.put_many("claim", 4, [])
    assert set(await store.entries("claim", 4)) == {"a", "b"}
    assert await store.groups("claim") == [4]
    await r.set("lease", "theirs")
    with pytest.raises(LeaseLostError):
        await store.put_many("proof", 4, entries)

    keys = KeyBuilder.for_client(r)
    dedup = RedisDeduplicator.for_supplier(
        r, DeduplicatorConfig(keys.miner_dedup_prefix()), SUPPLIER
    )
    for sid in ("a", "b", "c"):
        await dedup.mark_processed(b"relay", sid)
    await dedup.cleanup_sessions(["a", "b"])
    await dedup.cleanup_sessions([])
    assert [await dedup.is_duplicate(b"relay", sid) for sid in ("a", "b", "c")] == [
        False,
        False,
        True,
    ]
