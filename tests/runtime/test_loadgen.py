"""The load generator publishes Go-format relays for the on-chain sessions (fakeredis and real).

Heights are driven by producing blocks explicitly; the run loop is observed through its batch
hook and its ``done`` event, never through sleeps.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from relayminer.chain.sim.chain import SimulatedChain
from relayminer.chain.sim.config import ServiceConfig, SimChainConfig
from relayminer.chain.sim.loadgen import (
    ClosedSessions,
    LoadGenerator,
    LoadStats,
    SessionLoad,
    relay_request,
)
from relayminer.demo.runner import _Demo
from relayminer.keys import KeyBuilder
from relayminer.pipeline.relays import MinedRelayMessage
from relayminer.proto.poktroll_pb2 import Relay
from relayminer.protocol.windows import SharedParams
from relayminer.sessions.model import SessionSnapshot, SessionState
from tests.conftest import RedisBackend

SUP1, SUP2, OTHER = "pokt1lgsup1", "pokt1lgsup2", "pokt1lgother"
APP1, APP2 = "pokt1lgapp1", "pokt1lgapp2"
EASY, HARD = "easy", "hard"
HARD_TARGET = bytes([0x0F]) + b"\xff" * 31
CUPR = {EASY: 10, HARD: 7}


def params(grace: int = 1) -> SharedParams:
    return SharedParams(
        num_blocks_per_session=4,
        grace_period_end_offset_blocks=grace,
        claim_window_open_offset_blocks=1,
        claim_window_close_offset_blocks=4,
        proof_window_open_offset_blocks=0,
        proof_window_close_offset_blocks=4,
    )


def config(grace: int = 1) -> SimChainConfig:
    return SimChainConfig(
        block_time_seconds=0.01,
        shared_params=params(grace),
        services={
            EASY: ServiceConfig(compute_units_per_relay=CUPR[EASY]),
            HARD: ServiceConfig(
                compute_units_per_relay=CUPR[HARD], relay_difficulty_target=HARD_TARGET
            ),
        },
        applications={APP1: (EASY, HARD), APP2: (EASY,)},
        # SUP2 serves only EASY; OTHER is staked but not one of the generator's suppliers.
        suppliers={SUP1: (EASY, HARD), SUP2: (EASY,), OTHER: (EASY, HARD)},
        seed=11,
    )


@pytest.fixture
async def chain(backend: RedisBackend) -> AsyncIterator[SimulatedChain]:
    c = SimulatedChain(backend.client, config())
    await c.init()
    yield c
    await c.close()


async def stream(redis: Redis, supplier: str) -> list[MinedRelayMessage]:
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(
        KeyBuilder().stream_key(supplier)
    )  # type: ignore[assignment]
    out = []
    for _id, fields in entries:
        msg = MinedRelayMessage()
        msg.ParseFromString(fields[b"data"])
        out.append(msg)
    return out


async def test_relays_land_in_the_suppliers_streams_in_go_format(
    backend: RedisBackend, chain: SimulatedChain
) -> None:
    gen = LoadGenerator(backend.client, chain, [SUP1, SUP2], seed=5)
    published = await gen.publish(120, height=1)
    assert len(published) == 120

    by_supplier = {s: await stream(backend.client, s) for s in (SUP1, SUP2, OTHER)}
    assert by_supplier[OTHER] == []  # not a generator supplier: never targeted
    assert len(by_supplier[SUP1]) + len(by_supplier[SUP2]) == 120
    assert gen.stats.published == 120
    assert gen.stats.per_supplier == {
        s: len(by_supplier[s]) for s in (SUP1, SUP2) if by_supplier[s]
    }

    seen_services: set[tuple[str, str]] = set()
    hashes = set()
    for supplier in (SUP1, SUP2):
        for msg in by_supplier[supplier]:
            session = await chain.get_session(msg.application_address, msg.service_id, 1)
            assert supplier in session.suppliers
            relay = Relay()
            relay.ParseFromString(msg.relay_bytes)
            assert relay.req.meta.session_header == session.header
            assert relay.res.meta.session_header == session.header
            assert relay.req.meta.supplier_operator_address == supplier
            assert msg.relay_hash == hashlib.sha256(msg.relay_bytes).digest()
            assert msg.supplier_operator_address == supplier
            assert msg.session_id == session.header.session_id
            assert msg.session_start_height == session.header.session_start_block_height == 1
            assert msg.session_end_height == session.header.session_end_block_height == 4
            assert msg.compute_units_per_relay == CUPR[msg.service_id]
            assert msg.arrival_block_height == 1
            assert msg.published_at_unix_nano > 0
            if msg.service_id == HARD:
                assert msg.relay_hash < HARD_TARGET  # mined below the service's target
            hashes.add(msg.relay_hash)
            seen_services.add((supplier, msg.service_id))
    assert len(hashes) == 120  # every relay is unique
    assert (SUP2, HARD) not in seen_services  # SUP2 is not in the HARD sessions
    # With 120 relays over 4 targets every target got some (seeded choice).
    assert seen_services == {(SUP1, EASY), (SUP1, HARD), (SUP2, EASY)}

    # The per-session counts match the streams.
    counted = Counter((s, m.session_id) for s in (SUP1, SUP2) for m in by_supplier[s])
    assert {k: v.relays for k, v in gen.stats.sessions.items()} == dict(counted)
    for load in gen.stats.sessions.values():
        assert load.compute_units == load.relays * CUPR[load.service_id]
        assert (load.session_start_height, load.session_end_height) == (1, 4)


async def test_sessions_follow_the_height(backend: RedisBackend, chain: SimulatedChain) -> None:
    gen = LoadGenerator(backend.client, chain, [SUP1], seed=1)
    await gen.publish(10, height=2)
    first = set(gen.stats.sessions)
    assert {load.session_start_height for load in gen.stats.sessions.values()} == {1}
    await gen.publish(10, height=5)
    starts = {m.session_start_height for m in await stream(backend.client, SUP1)}
    assert starts == {1, 5}
    # Session 1..4 is payable up to arrival 4 (grace 1): at 5 its record is folded into the
    # closed ones; session 5..8 is open.
    assert {load.session_start_height for load in gen.stats.sessions.values()} == {5}
    assert len(gen.stats.closed) == len(first) and all(k in gen.stats.closed for k in first)
    assert gen.stats.session_count == len(first) + len(gen.stats.sessions)
    assert all(gen.stats.published_to(*k) for k in first | set(gen.stats.sessions))
    assert not gen.stats.published_to(SUP2, next(iter(first))[1])
    assert gen.stats.last_session_end_height == 8


async def test_a_closed_session_published_to_again_is_open_once(
    backend: RedisBackend, chain: SimulatedChain
) -> None:
    # Heights only rise in a run; a caller going back still counts each session once.
    gen = LoadGenerator(backend.client, chain, [SUP1], seed=4)
    await gen.publish(10, height=1)
    opened = set(gen.stats.sessions)
    await gen.publish(10, height=5)
    assert all(k in gen.stats.closed for k in opened)
    await gen.publish(40, height=2)
    back = {k for k in gen.stats.sessions if k in opened}
    assert back == opened  # 40 relays over SUP1's 3 targets: all chosen again (seeded)
    assert not any(k in gen.stats.closed for k in back)
    later = [k for k, load in gen.stats.sessions.items() if load.session_start_height == 5]
    assert gen.stats.session_count == len(opened) + len(later)


def test_closed_sessions_are_exact_members() -> None:
    closed = ClosedSessions()
    pairs = [(f"pokt1s{i % 7}", f"{i:064x}") for i in range(1000)]
    for supplier, sid in pairs:
        closed.add(supplier, sid)
    assert len(closed) == 1000
    assert all(p in closed for p in pairs)
    assert ("pokt1s1", f"{0:064x}") not in closed  # pair (s0, 0) exists, not (s1, 0)
    assert "not a pair" not in closed
    closed.discard(*pairs[3])
    closed.discard("pokt1nobody", "x")  # not there: nothing happens
    assert pairs[3] not in closed and len(closed) == 999


async def test_relays_stop_when_the_session_is_no_longer_payable(backend: RedisBackend) -> None:
    # Grace period 0: the Go relayer's rule (arrival <= end + grace - 1) excludes the end block.
    chain = SimulatedChain(backend.client, config(grace=0))
    await chain.init()
    try:
        gen = LoadGenerator(backend.client, chain, [SUP1, SUP2], seed=2)
        assert await gen.publish(10, height=4) == []
        assert len(await gen.publish(10, height=3)) == 10
        assert gen.stats.published == 10
    finally:
        await chain.close()


async def test_the_same_seed_gives_the_same_relays(backend: RedisBackend) -> None:
    chain = SimulatedChain(backend.client, config())
    a = LoadGenerator(backend.client, chain, [SUP1, SUP2], seed=9)
    b = LoadGenerator(backend.client, chain, [SUP1, SUP2], seed=9)
    ta, tb = await a.targets(1), await b.targets(1)
    built_a = [a.build(ta[i % len(ta)], 1).relay_hash for i in range(8)]
    built_b = [b.build(tb[i % len(tb)], 1).relay_hash for i in range(8)]
    assert built_a == built_b
    assert len(set(built_a)) == 8


async def test_run_publishes_until_the_sessions_are_over(
    backend: RedisBackend, chain: SimulatedChain
) -> None:
    first_batch = asyncio.Event()
    gen = LoadGenerator(
        backend.client,
        chain,
        [SUP1, SUP2],
        relays_per_second=500,
        sessions=1,
        seed=3,
        tick_seconds=0.02,
        on_batch=lambda _h, _n: first_batch.set(),
    )
    task = asyncio.create_task(gen.run())
    await asyncio.wait_for(first_batch.wait(), 10)
    assert not gen.done.is_set()
    while (await chain.latest_block()).height < 5:  # into session 2: the load is over
        await chain.produce_block()
    stats = await asyncio.wait_for(task, 10)
    assert gen.done.is_set()
    assert stats.published > 0
    assert stats.finished_at is not None and stats.elapsed_seconds > 0
    msgs = await stream(backend.client, SUP1) + await stream(backend.client, SUP2)
    assert len(msgs) == stats.published
    assert {m.session_start_height for m in msgs} == {1}
    assert all(1 <= m.arrival_block_height <= 4 for m in msgs)


async def test_run_stops_on_the_stop_event(backend: RedisBackend, chain: SimulatedChain) -> None:
    stop = asyncio.Event()
    gen = LoadGenerator(
        backend.client,
        chain,
        [SUP1],
        relays_per_second=200,
        tick_seconds=0.02,
        on_batch=lambda _h, _n: stop.set(),
    )
    stats = await asyncio.wait_for(gen.run(stop), 10)
    assert stats.published == len(await stream(backend.client, SUP1)) > 0


async def test_run_stops_after_its_duration(backend: RedisBackend, chain: SimulatedChain) -> None:
    gen = LoadGenerator(backend.client, chain, [SUP1], relays_per_second=100, duration_seconds=0.05)
    stats = await asyncio.wait_for(gen.run(), 10)
    assert gen.done.is_set()
    assert stats.published == len(await stream(backend.client, SUP1))


def test_relay_request_holds_the_counter_and_the_nonce() -> None:
    assert relay_request(1) != relay_request(2)
    assert relay_request(1, 1) != relay_request(1, 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"relays_per_second": 0}, "relays_per_second"),
        ({"sessions": 0}, "sessions"),
        ({"duration_seconds": 0}, "duration_seconds"),
        ({"tick_seconds": 0}, "tick_seconds"),
    ],
)
async def test_invalid_arguments_are_rejected(
    backend: RedisBackend, chain: SimulatedChain, kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LoadGenerator(backend.client, chain, [SUP1], **kwargs)  # type: ignore[arg-type]


async def test_no_supplier_or_no_applications_is_an_error(
    backend: RedisBackend, chain: SimulatedChain
) -> None:
    with pytest.raises(ValueError, match="supplier"):
        LoadGenerator(backend.client, chain, [])
    with pytest.raises(ValueError, match="applications"):
        LoadGenerator(backend.client, object(), [SUP1])  # type: ignore[arg-type]


def _snapshot(supplier: str, sid: str, state: SessionState, outcome: str | None) -> SessionSnapshot:
    return SessionSnapshot(
        session_id=sid,
        supplier_operator_address=supplier,
        service_id=EASY,
        application_address=APP1,
        session_start_height=1,
        session_end_height=4,
        state=state,
        settlement_outcome=outcome,
        settlement_height=None if outcome is None else 14,
    )


def test_the_demo_waits_for_every_published_session_open_or_closed() -> None:
    stats = LoadStats()
    stats.sessions[(SUP1, "open")] = SessionLoad(SUP1, "open", APP1, EASY, 5, 8, 10, relays=3)
    stats.closed.add(SUP1, "closed")
    done = {
        (SUP1, "open"): _snapshot(SUP1, "open", SessionState.PROVED, "settled_proven"),
        (SUP1, "closed"): _snapshot(SUP1, "closed", SessionState.CLAIM_WINDOW_CLOSED, None),
        # the miner's own session that got no relay from the generator: not waited for
        (SUP2, "other"): _snapshot(SUP2, "other", SessionState.ACTIVE, None),
    }
    settled = _Demo._settled
    assert settled(stats, done, 14, 14)
    assert not settled(stats, done, 13, 14)  # before the last settlement height
    assert not settled(stats, {k: v for k, v in done.items() if k[1] != "closed"}, 14, 14)
    assert not settled(stats, {k: v for k, v in done.items() if k[1] != "open"}, 14, 14)
    unsettled = dict(done)
    unsettled[(SUP1, "open")] = _snapshot(SUP1, "open", SessionState.PROVED, None)
    assert not settled(stats, unsettled, 14, 14)
    active = dict(done)
    active[(SUP1, "closed")] = _snapshot(SUP1, "closed", SessionState.CLAIMED, None)
    assert not settled(stats, active, 14, 14)
