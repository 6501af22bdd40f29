"""A master of the cluster is killed (SIGKILL) while three replicas mine six suppliers; its
replica is promoted after ``cluster-node-timeout``. The relayers re-deliver everything they
published (as a Go relayer retries a failed XADD, and to replace entries the dead master had not
replicated): afterwards every count and root is exact, nothing counted twice. A batch's leaves,
counters and ack are one script, replicated as a unit, so a batch the promoted replica never
saw is re-delivered whole, never half counted (docs/redis-deployments.md)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from redis.exceptions import RedisError

from relayminer.chain.sim.chain import SimulatedChain
from relayminer.errors import StoreError
from relayminer.keys import KeyBuilder
from relayminer.pipeline.relays import MinedRelayMessage
from tests.cluster.cluster_support import ClusterGroup, wait_until
from tests.cluster.mining import assert_exact, publish, replicas, wait_counted
from tests.lifecycle.support import chain_config
from tests.pipeline.factory import workload

pytestmark = pytest.mark.slow
SUPPLIERS = [f"pokt1fo{i}" for i in range(6)]
SESSIONS = ["sess-a", "sess-b"]


async def test_a_killed_master_loses_no_relay_and_counts_none_twice(
    private_cluster: ClusterGroup,
) -> None:
    kb = KeyBuilder.cluster()
    client = private_cluster.client()
    try:
        await client.initialize()  # the slot map, for get_node_from_key
        placement = Counter(client.get_node_from_key(kb.stream_key(s)).port for s in SUPPLIERS)
        victim = next(
            m for m in private_cluster.masters if m.port == placement.most_common(1)[0][0]
        )
        chain = SimulatedChain(client, chain_config())  # type: ignore[arg-type]
        await chain.init()
        msgs, expected = workload(33, SUPPLIERS, SESSIONS, 3000, duplicate_every=13)
        chunks = [msgs[i : i + 200] for i in range(0, len(msgs), 200)]

        async def relayer(chunk: list[MinedRelayMessage]) -> None:
            while True:  # a relayer retries a failed publish, entries and all
                try:
                    await publish(client, chunk)
                    return
                except (StoreError, RedisError, OSError):  # RelayPublisher raises StoreError
                    await asyncio.sleep(0.05)

        async with replicas(private_cluster, chain, SUPPLIERS, 3) as group:
            await wait_until(lambda: _all_owned(group.owners()), 20, "every supplier owned")
            for chunk in chunks[: len(chunks) // 2]:
                await relayer(chunk)
            await wait_until(
                lambda: _some_counted(client, kb, victim.port), 20, "the victim's suppliers mined"
            )
            victim.server.kill()  # SIGKILL: no shutdown, no last write flushed
            for chunk in chunks[len(chunks) // 2 :]:
                await relayer(chunk)  # relays keep arriving through the failover
            await private_cluster.wait_healthy(30)  # the replica took over its slots
            for chunk in chunks:  # re-delivery of everything: what the old master lost
                await relayer(chunk)
            await wait_counted(client, expected, 60)
            await wait_until(lambda: _all_owned(group.owners()), 20, "every supplier owned again")
        promoted = {client.get_node_from_key(kb.stream_key(s)).port for s in SUPPLIERS}
        assert victim.port not in promoted
        await assert_exact(client, expected)
        await chain.close()
    finally:
        await client.aclose()


async def _all_owned(owners: dict[str, str]) -> bool:
    return set(owners) == set(SUPPLIERS)


async def _some_counted(client: object, kb: KeyBuilder, port: int) -> bool:
    from redis.asyncio.cluster import RedisCluster

    assert isinstance(client, RedisCluster)
    for sup in SUPPLIERS:
        if client.get_node_from_key(kb.stream_key(sup)).port != port:
            continue
        index = await client.smembers(kb.miner_sessions_index_key(sup))
        if not index:
            return False
    return True
