"""Three miner replicas share six suppliers on a 3-master + 3-replica Redis Cluster: every
relay counted exactly once, every session root exact (docs/redis-deployments.md)."""

from __future__ import annotations

from redis.asyncio.cluster import RedisCluster

from relayminer.chain.sim.chain import SimulatedChain
from relayminer.keys import KeyBuilder
from tests.cluster.cluster_support import ClusterGroup, wait_until
from tests.cluster.mining import assert_exact, publish, replicas, wait_counted
from tests.lifecycle.support import chain_config
from tests.pipeline.factory import workload

SUPPLIERS = [f"pokt1clu{i}" for i in range(6)]
SESSIONS = ["sess-a", "sess-b"]


async def test_three_replicas_six_suppliers_exact_counts_and_roots(
    redis_cluster: ClusterGroup, cluster_client: RedisCluster
) -> None:
    kb = KeyBuilder.cluster()
    masters = {cluster_client.get_node_from_key(kb.stream_key(s)).name for s in SUPPLIERS}
    assert len(masters) >= 2  # the suppliers really are sharded
    chain = SimulatedChain(cluster_client, chain_config())  # type: ignore[arg-type]
    await chain.init()
    msgs, expected = workload(21, SUPPLIERS, SESSIONS, 2400, duplicate_every=9)
    half = len(msgs) // 2
    await publish(cluster_client, msgs[:half])  # waiting before the replicas start
    async with replicas(redis_cluster, chain, SUPPLIERS, 3) as group:

        async def shared() -> bool:
            owners = group.owners()
            per = [list(owners.values()).count(m.instance_id) for m in group.miners]
            return len(owners) == len(SUPPLIERS) and per == [2, 2, 2]

        await wait_until(shared, 20, "six suppliers shared two by two")
        await publish(cluster_client, msgs[half:])  # arriving while they run
        await publish(cluster_client, msgs[:100])  # a relayer's retry: duplicates
        await wait_counted(cluster_client, expected, 30)
    await assert_exact(cluster_client, expected)
    await chain.close()
