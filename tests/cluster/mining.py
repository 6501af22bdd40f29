"""Running miner replicas on a cluster and checking what they mined (shared by the cluster
tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from relayminer.chain.base import Chain
from relayminer.config import MinerConfig, parse_config
from relayminer.keys import KeyBuilder
from relayminer.pipeline.publisher import RelayPublisher
from relayminer.pipeline.relays import MinedRelayMessage
from relayminer.runtime.miner import Miner
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig
from relayminer.smst.tree_root import session_tree_root
from tests.cluster.cluster_support import ClusterGroup, wait_until
from tests.pipeline.factory import Expected

Sessions = dict[tuple[str, str], Expected]


def miner_config(url: str, instance: str, suppliers: list[str]) -> MinerConfig:
    return parse_config(
        {
            "suppliers": suppliers,
            "instance_id": instance,
            "redis": {"url": url, "max_connections": 64},
            "worker": {"batch_size": 100, "block_ms": 50, "claim_idle_ms": 500},
            "leases": {"ttl_seconds": 2.0, "renew_seconds": 0.4},
            "metrics": {"enabled": False},
        }
    )


@dataclass
class Replicas:
    """In-process miner replicas, each with its own cluster client."""

    miners: list[Miner] = field(default_factory=list)
    clients: list[RedisCluster] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def owners(self) -> dict[str, str]:
        """supplier -> instance of every pipeline running now."""
        return {s: m.instance_id for m in self.miners for s in m.pipelines}


@asynccontextmanager
async def replicas(
    cluster: ClusterGroup, chain: Chain, suppliers: list[str], n: int
) -> AsyncIterator[Replicas]:
    group = Replicas()
    for i in range(n):
        client = cluster.client()
        group.clients.append(client)
        config = miner_config(cluster.url, f"miner-{i}", suppliers)
        group.miners.append(Miner(config, client, chain))  # type: ignore[arg-type]
    group.tasks = [asyncio.create_task(m.run(group.stop)) for m in group.miners]
    try:
        yield group
    finally:
        group.stop.set()
        await asyncio.gather(*group.tasks)
        for client in group.clients:
            await client.aclose()


async def publish(redis: RedisCluster, msgs: list[MinedRelayMessage]) -> None:
    pub = RelayPublisher(redis)  # type: ignore[arg-type]
    for i in range(0, len(msgs), 500):
        await pub.publish_batch(msgs[i : i + 500])


async def counted(redis: Redis | RedisCluster, expected: Sessions) -> dict[tuple[str, str], int]:
    out = {}
    for sup, sess in expected:
        store = RedisSessionStore(redis, SessionStoreConfig(sup))  # type: ignore[arg-type]
        snap = await store.get(sess)
        out[(sup, sess)] = snap.relay_count if snap is not None else 0
    return out


async def unfinished(redis: RedisCluster, suppliers: set[str]) -> dict[str, tuple[int, int]]:
    """supplier -> (entries pending, entries in the stream) of every stream not drained yet: a
    worker acks and deletes every entry it has accounted."""
    kb = KeyBuilder.cluster()
    out = {}
    for sup in sorted(suppliers):
        pending = (await redis.xpending(kb.stream_key(sup), kb.consumer_group()))["pending"]
        length = await redis.xlen(kb.stream_key(sup))
        if pending or length:
            out[sup] = (pending, length)
    return out


async def wait_counted(redis: RedisCluster, expected: Sessions, deadline_s: float) -> None:
    """Wait until every relay is counted **and** every entry delivered has been accounted (the
    streams drained): the counts can be complete while a worker still holds a batch of
    redelivered duplicates, which would show as pending."""
    want = {key: exp.relay_count for key, exp in expected.items()}
    suppliers = {sup for sup, _ in expected}

    async def done() -> bool:
        return await counted(redis, expected) == want and not await unfinished(redis, suppliers)

    try:
        await wait_until(done, deadline_s, "every relay counted, every stream drained")
    except AssertionError:
        raise AssertionError(
            f"counted {await counted(redis, expected)}, want {want}; "
            f"not drained (pending, length): {await unfinished(redis, suppliers)}"
        ) from None


async def assert_exact(redis: RedisCluster, expected: Sessions) -> None:
    """Counts, compute units and roots of every session exactly as mined in memory; every relay
    entry acked; every key but the relayers' streams in the cluster layout."""
    kb = KeyBuilder.cluster()
    for (sup, sess), exp in expected.items():
        store = RedisSessionStore(redis, SessionStoreConfig(sup))  # type: ignore[arg-type]
        snap = await store.get(sess)
        assert snap is not None, (sup, sess)
        assert (snap.relay_count, snap.total_compute_units) == (exp.relay_count, exp.compute_units)
        root = await session_tree_root(redis, sup, sess)  # type: ignore[arg-type]
        assert root == exp.trie.root(), (sup, sess)
        assert await redis.hlen(kb.smst_leaves_key(sup, sess)) == exp.relay_count
    for sup in {s for s, _ in expected}:
        pending = await redis.xpending(kb.stream_key(sup), kb.consumer_group())
        assert pending["pending"] == 0, sup
        assert await redis.xlen(kb.dead_letter_stream_key(sup)) == 0
    for raw in [k async for k in redis.scan_iter(match="ha:*", count=1000)]:
        key = raw.decode()
        tagged = "{" in key
        stream = key.startswith(kb.stream_prefix() + ":")
        assert tagged or stream, f"a key outside the cluster layout: {key}"
