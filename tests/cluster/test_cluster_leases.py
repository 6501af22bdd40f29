"""Supplier leases and fencing on a Redis Cluster: the lease key sits in its supplier's slot
(so every fenced script of the supplier stays in one slot) and the replica registry in one slot
of its own (a heartbeat writes both its keys in one MULTI). Mirrors tests/runtime/test_leases.py
with the cluster layout's key names."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio.cluster import RedisCluster

from relayminer.errors import LeaseLostError
from relayminer.keys import KeyBuilder
from relayminer.lifecycle.manager import LifecycleManager
from relayminer.pipeline.worker import RelayWorker, WorkerConfig
from relayminer.runtime.leases import Fence, SupplierLeases
from relayminer.smst.journal_trees import JournalTrees
from tests.cluster.cluster_support import ClusterGroup
from tests.cluster.mining import publish
from tests.lifecycle.support import World
from tests.pipeline.factory import workload
from tests.runtime.test_leases import SUPPLIERS, Recorder

KB = KeyBuilder.cluster()


def leases(
    cluster: ClusterGroup, clients: list[RedisCluster], instance: str, rec: Recorder
) -> SupplierLeases:
    client = cluster.client()
    clients.append(client)
    return SupplierLeases(
        client,  # type: ignore[arg-type]
        instance,
        SUPPLIERS,
        ttl_seconds=10,
        renew_seconds=2,
        on_acquired=rec.acquired,
        on_lost=rec.lost,
    )


@pytest.fixture
async def clients() -> list[RedisCluster]:
    made: list[RedisCluster] = []
    yield made  # type: ignore[misc]
    for c in made:
        await c.aclose()


async def test_replicas_share_fairly_in_the_cluster_layout(
    redis_cluster: ClusterGroup, cluster_client: RedisCluster, clients: list[RedisCluster]
) -> None:
    ra, rb = Recorder(), Recorder()
    a = leases(redis_cluster, clients, "A", ra)
    b = leases(redis_cluster, clients, "B", rb)
    assert a.keys.hash_tagged  # chosen from the client
    await a.tick()
    assert a.owned == SUPPLIERS
    for s in SUPPLIERS:
        token = await cluster_client.get(KB.miner_claim_key(s))
        assert token is not None and token.decode().startswith("A:")
        assert 0 < await cluster_client.pttl(KB.miner_claim_key(s)) <= 10_000
        assert not await cluster_client.exists(KeyBuilder().miner_claim_key(s))
    await b.tick()
    assert b.owned == []
    assert await cluster_client.smembers(KB.miner_active_set_key()) == {b"A", b"B"}
    await a.tick()  # two replicas: fair share 2, A hands two back
    await b.tick()
    assert len(a.owned) == 2 and len(b.owned) == 2 and set(a.owned).isdisjoint(b.owned)


async def test_stop_releases_every_lease_and_unregisters(
    redis_cluster: ClusterGroup, cluster_client: RedisCluster, clients: list[RedisCluster]
) -> None:
    rec = Recorder()
    a = leases(redis_cluster, clients, "A", rec)
    stop = asyncio.Event()
    task = asyncio.create_task(a.run(stop))
    await asyncio.wait_for(rec.all_started.wait(), 10)
    assert await cluster_client.exists(KB.miner_instance_key("A"))
    stop.set()
    await asyncio.wait_for(task, 10)
    assert rec.running == {}
    assert [k async for k in cluster_client.scan_iter(match=KB.miner_claim_prefix() + "*")] == []
    assert await cluster_client.smembers(KB.miner_active_set_key()) == set()
    assert not await cluster_client.exists(KB.miner_instance_key("A"))


async def test_stale_owner_cannot_count_relays(cluster_client: RedisCluster) -> None:
    sup = SUPPLIERS[0]
    lease = KB.miner_claim_key(sup)
    await cluster_client.set(lease, "B:new-owner")
    msgs, _ = workload(1, [sup], ["sess-1"], 20)
    await publish(cluster_client, msgs)
    stale_config = WorkerConfig(consumer_name="A", fence=Fence(lease, "A:old"))
    stale = RelayWorker(cluster_client, sup, stale_config)  # type: ignore[arg-type]
    with pytest.raises(LeaseLostError):
        await stale.drain()
    assert [k async for k in cluster_client.scan_iter(match="ha:miner:sessions:*")] == []
    assert [k async for k in cluster_client.scan_iter(match="ha:smst:*")] == []
    pending = await cluster_client.xpending(KB.stream_key(sup), KB.consumer_group())
    assert pending["pending"] == 20  # left for the owner
    owner_config = WorkerConfig(consumer_name="B", fence=Fence(lease, "B:new-owner"))
    owner = RelayWorker(cluster_client, sup, owner_config)  # type: ignore[arg-type]
    assert await owner.drain() == 20 and owner.total.counted == 20


async def test_stale_owner_cannot_seal_or_run_a_lifecycle_pass(
    cluster_client: RedisCluster,
) -> None:
    sup = SUPPLIERS[0]
    lease = KB.miner_claim_key(sup)
    await cluster_client.set(lease, "B:new-owner")
    fence = Fence(lease, "A:old")
    trees = JournalTrees(cluster_client, sup, fence=fence)  # type: ignore[arg-type]
    with pytest.raises(LeaseLostError):
        await trees.seal("sess-1")
    assert await cluster_client.exists(KB.smst_root_key(sup, "sess-1")) == 0
    world = await World.create(cluster_client)  # type: ignore[arg-type]
    try:
        manager = LifecycleManager(cluster_client, sup, world.chain, fence=fence)  # type: ignore[arg-type]
        with pytest.raises(LeaseLostError):
            await manager.pass_at(1)
    finally:
        await world.close()
