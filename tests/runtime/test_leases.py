"""Supplier leases and fencing: a replica that lost a supplier's lease cannot write for it."""

from __future__ import annotations

import asyncio
import time

import pytest

from relayminer.errors import LeaseLostError
from relayminer.lifecycle.manager import LifecycleManager
from relayminer.pipeline.publisher import RelayPublisher
from relayminer.pipeline.worker import RelayWorker, WorkerConfig
from relayminer.runtime.leases import Fence, SupplierLeases
from relayminer.smst.journal_trees import JournalTrees
from relayminer.smst.redis_store import RedisSMSTStore
from tests.conftest import RedisBackend
from tests.lifecycle.support import World
from tests.pipeline.factory import workload

SUPPLIERS = ["pokt1s1", "pokt1s2", "pokt1s3", "pokt1s4"]


class Recorder:
    def __init__(self) -> None:
        self.running: dict[str, Fence] = {}
        self.events: list[tuple[str, str]] = []
        self.all_started = asyncio.Event()

    async def acquired(self, supplier: str, fence: Fence) -> None:
        self.running[supplier] = fence
        self.events.append(("start", supplier))
        if len(self.running) == len(SUPPLIERS):
            self.all_started.set()

    async def lost(self, supplier: str) -> None:
        self.running.pop(supplier)
        self.events.append(("stop", supplier))


def leases(backend: RedisBackend, instance: str, rec: Recorder, **kw: float) -> SupplierLeases:
    return SupplierLeases(
        backend.new_client(),
        instance,
        SUPPLIERS,
        ttl_seconds=kw.get("ttl", 10),
        renew_seconds=kw.get("renew", 2),
        on_acquired=rec.acquired,
        on_lost=rec.lost,
    )


async def test_single_replica_takes_every_supplier(backend: RedisBackend) -> None:
    rec = Recorder()
    a = leases(backend, "A", rec)
    await a.tick()
    assert a.owned == SUPPLIERS and set(rec.running) == set(SUPPLIERS)
    for s in SUPPLIERS:
        token = await backend.client.get(f"ha:miner:claim:{s}")
        assert token is not None and token.decode().startswith("A:")
        assert 0 < await backend.client.pttl(f"ha:miner:claim:{s}") <= 10_000
    assert await backend.client.smembers("ha:miner:active") == {b"A"}


async def test_two_replicas_share_fairly_and_rebalance(backend: RedisBackend) -> None:
    ra, rb = Recorder(), Recorder()
    a, b = leases(backend, "A", ra), leases(backend, "B", rb)
    await a.tick()
    assert len(a.owned) == 4
    await b.tick()  # B registers; nothing is free yet
    assert b.owned == []
    await a.tick()  # A now sees two replicas: fair share 2, it hands two back
    assert len(a.owned) == 2 and ("stop", a.owned[0]) not in ra.events
    await b.tick()
    assert len(b.owned) == 2 and set(a.owned).isdisjoint(b.owned)
    assert set(ra.running) == set(a.owned) and set(rb.running) == set(b.owned)


async def test_lease_taken_by_someone_else_stops_the_pipeline(backend: RedisBackend) -> None:
    rec = Recorder()
    a = leases(backend, "A", rec)
    await a.tick()
    await backend.client.set("ha:miner:claim:pokt1s2", "B:stolen")
    await a.tick()  # the renewal sees a foreign token
    assert "pokt1s2" not in a.owned and ("stop", "pokt1s2") in rec.events
    assert await backend.client.get("ha:miner:claim:pokt1s2") == b"B:stolen"  # not released


async def test_unrenewed_lease_is_dropped_before_it_can_expire(backend: RedisBackend) -> None:
    rec = Recorder()
    a = leases(backend, "A", rec)
    await a.tick()
    a.held["pokt1s3"].renewed_at = time.monotonic() - 8.5  # ttl 10 - renew 2 = 8 s deadline
    await a._enforce_deadlines()  # e.g. Redis unreachable: no round trip needed
    assert "pokt1s3" not in a.owned and ("stop", "pokt1s3") in rec.events


async def test_stop_releases_every_lease_and_unregisters(backend: RedisBackend) -> None:
    rec = Recorder()
    a = leases(backend, "A", rec, ttl=10, renew=2)
    stop = asyncio.Event()
    task = asyncio.create_task(a.run(stop))
    await asyncio.wait_for(rec.all_started.wait(), 10)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert rec.running == {}
    assert await backend.client.keys("ha:miner:claim:*") == []
    assert await backend.client.smembers("ha:miner:active") == set()


async def test_dead_replica_is_not_counted(backend: RedisBackend) -> None:
    rec = Recorder()
    a = leases(backend, "A", rec)
    await backend.client.sadd("ha:miner:active", "ghost")  # registered, heartbeat expired
    await a.tick()
    assert len(a.owned) == 4
    assert await backend.client.smembers("ha:miner:active") == {b"A"}


def test_renew_must_be_at_most_half_the_ttl(backend: RedisBackend) -> None:
    with pytest.raises(ValueError, match="half"):
        leases(backend, "A", Recorder(), ttl=4, renew=3)


# --- fencing -------------------------------------------------------------------------------------


async def test_stale_owner_cannot_count_relays(backend: RedisBackend) -> None:
    r = backend.client
    await r.set("ha:miner:claim:pokt1s1", "B:new-owner")
    msgs, _ = workload(1, ["pokt1s1"], ["sess-1"], 20)
    await RelayPublisher(r).publish_batch(msgs)
    stale = RelayWorker(
        r,
        "pokt1s1",
        WorkerConfig(consumer_name="A", fence=Fence("ha:miner:claim:pokt1s1", "A:old")),
    )
    with pytest.raises(LeaseLostError):
        await stale.drain()
    assert await r.keys("ha:miner:sessions:*") == []
    assert await r.keys("ha:smst:*") == []  # the SMST commit is fenced too
    assert await r.keys("ha:miner:dedup:*") == []
    assert (await r.xpending("ha:relays:pokt1s1", "ha-miners"))[
        "pending"
    ] == 20  # left for the owner
    owner = RelayWorker(
        r,
        "pokt1s1",
        WorkerConfig(consumer_name="B", fence=Fence("ha:miner:claim:pokt1s1", "B:new-owner")),
    )
    assert await owner.drain() == 20 and owner.total.counted == 20


async def test_stale_owner_cannot_seal_or_run_a_lifecycle_pass(backend: RedisBackend) -> None:
    r = backend.client
    await r.set("ha:miner:claim:pokt1s1", "B:new-owner")
    fence = Fence("ha:miner:claim:pokt1s1", "A:old")
    for trees in (
        RedisSMSTStore(r, "pokt1s1", fence=fence),
        JournalTrees(r, "pokt1s1", fence=fence),
    ):
        with pytest.raises(LeaseLostError):
            await trees.seal("sess-1")
        assert await r.exists("ha:smst:pokt1s1:sess-1:root") == 0
    world = await World.create(r)
    try:
        manager = LifecycleManager(r, "pokt1s1", world.chain, fence=fence)
        with pytest.raises(LeaseLostError):
            await manager.pass_at(1)
    finally:
        await world.close()
