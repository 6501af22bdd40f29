"""Sentinel failover with real processes (1 master, 1 replica, 3 sentinels; down-after 500 ms).

A client from ``connect("redis-sentinel://...")`` follows the promoted replica within a bounded
delay of the failover, and a RelayWorker running across the failover counts every relay exactly
once: batches the old master accounted but never replicated are re-delivered whole by the new
master and counted there, once (docs/redis-deployments.md, "Failover guarantees").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relayminer import RedisSessionStore, SessionStoreConfig
from relayminer.pipeline.publisher import RelayPublisher
from relayminer.pipeline.worker import BatchResult, RelayWorker, WorkerConfig
from relayminer.runtime.connections import BlockingSentinelConnectionPool, connect
from relayminer.smst.layout import SMSTLayout
from relayminer.smst.tree_root import session_tree_root
from tests.pipeline.factory import workload
from tests.runtime.sentinel_support import (
    SentinelGroup,
    start_group,
    switch_master_event,
    wait_until,
)

pytestmark = pytest.mark.slow
SUP = "pokt1sentinel"
#: after the sentinels announce the new master, a client must be writing to it within this
FOLLOW_BOUND_S = 1.0
#: the relay worker retries a lost connection with backoff (1 s, 2 s, 4 s ...): it must be
#: accounting on the new master within this after the announcement
WORKER_FOLLOW_BOUND_S = 8.0


@pytest.fixture
async def group(tmp_path: Path) -> AsyncIterator[SentinelGroup]:
    g = await start_group(tmp_path / "sentinel")
    try:
        yield g
    finally:
        g.stop()


async def relay_total(client: aioredis.Redis) -> int:
    snaps = await RedisSessionStore(client, SessionStoreConfig(SUP)).get_by_supplier()
    return sum(s.relay_count for s in snaps)


async def test_client_follows_the_promoted_replica(group: SentinelGroup) -> None:
    client = connect(group.url(db=0), max_connections=8, pool_timeout=5)
    try:
        assert isinstance(client.connection_pool, BlockingSentinelConnectionPool)
        assert await client.set(b"before", b"1")
        assert await client.wait(1, 5000) == 1  # on the replica too
        # 300 commands at once on 8 connections wait for each other through sentinel too
        await asyncio.gather(*(client.incr(b"n") for _ in range(300)))
        assert await client.get(b"n") == b"300"

        switched, sentinel_client = await switch_master_event(group)
        killed_at = time.monotonic()
        group.kill_master()

        async def writes() -> bool:
            try:
                return bool(await client.set(b"after", b"2"))
            except (RedisConnectionError, RedisTimeoutError):
                return False

        await wait_until(writes, 30, "a write through the sentinel client succeeds")
        followed_at = time.monotonic()
        switched_at = await asyncio.wait_for(switched, 5)
        await sentinel_client.aclose()

        assert followed_at - switched_at <= FOLLOW_BOUND_S
        print(
            f"failover: switch-master {switched_at - killed_at:.2f}s after the kill, "
            f"client writing {followed_at - killed_at:.2f}s after the kill"
        )
        assert client.connection_pool.master_address == ("127.0.0.1", group.replica.port)
        assert (await client.info("replication"))["role"] == "master"
        assert await client.get(b"before") == b"1"
        assert await client.get(b"n") == b"300"
    finally:
        await client.aclose()


@pytest.mark.parametrize("layout", list(SMSTLayout), ids=[x.value for x in SMSTLayout])
async def test_worker_across_failover_counts_every_relay_once(
    group: SentinelGroup, layout: SMSTLayout
) -> None:
    """Replication to the replica is cut after batch CUT_AT (everything before is on the
    replica: WAIT), the worker accounts more batches on the master alone, then the master is
    SIGKILLed. The promoted replica holds only the counts of the cut; the worker re-delivers the
    lost batches whole and ends with exact counts and trees."""
    cut_at, kill_at = 4, 7
    msgs, expected = workload(15, [SUP], ["sess-a", "sess-b", "sess-c"], 3000, duplicate_every=37)
    master, replica = group.client(group.master), group.client(group.replica)
    client = connect(group.url(), max_connections=16, pool_timeout=5)
    stop = asyncio.Event()
    seen: dict[str, float] = {}
    batches = 0

    async def on_batch(result: BatchResult) -> None:
        nonlocal batches
        batches += 1
        if "switched" in seen and "first_after" not in seen:
            seen["first_after"] = time.monotonic()
        if batches == cut_at:
            assert await master.wait(1, 5000) == 1
            seen["at_cut"] = await relay_total(master)
            # The replica can no longer authenticate to its master: nothing more is replicated.
            await replica.config_set("masteruser", "nobody")
            await replica.config_set("masterauth", "wrong")
            await master.client_kill_filter(_type="replica")
        elif batches == kill_at:
            seen["at_kill"] = await relay_total(master)
            seen["killed"] = time.monotonic()
            group.kill_master()
            seen["replica_holds"] = await relay_total(replica)  # read-only, not yet promoted

    try:
        await RelayPublisher(master).publish_batch(msgs)
        assert await master.wait(1, 5000) == 1
        switched, sentinel_client = await switch_master_event(group)
        worker = RelayWorker(
            client,
            SUP,
            WorkerConfig(
                batch_size=100,
                block_ms=100,
                claim_idle_ms=500,
                consumer_name="w1",
                smst_layout=layout,
            ),
            on_batch=on_batch,
        )
        running = asyncio.create_task(worker.run(stop))

        async def remember_switch() -> None:
            seen["switched"] = await switched

        remembering = asyncio.create_task(remember_switch())

        stream, group_name = worker.consumer.stream, worker.consumer.group

        async def all_handled() -> bool:
            if running.done():
                running.result()  # a crash of the worker fails the test now
            return bool(
                "switched" in seen
                and await client.xlen(stream) == 0
                and (await client.xpending(stream, group_name))["pending"] == 0
            )

        await wait_until(all_handled, 40, "every relay handled on the new master")
        stop.set()
        await asyncio.wait_for(running, 10)
        await remembering
        await sentinel_client.aclose()

        expected_total = sum(e.relay_count for e in expected.values())
        lost = seen["at_kill"] - seen["at_cut"]
        assert lost > 0, "the test must lose accounted batches in the failover"
        assert seen["replica_holds"] == seen["at_cut"]  # the cut really held
        # Every relay counted once on the new master ...
        store = RedisSessionStore(client, SessionStoreConfig(SUP))
        for (_, sess), exp in expected.items():
            snap = await store.get(sess)
            assert snap is not None
            assert (snap.relay_count, snap.total_compute_units) == (
                exp.relay_count,
                exp.compute_units,
            )
            assert await session_tree_root(client, SUP, sess) == exp.trie.root()
        # ... and the lost batches were counted again there, not the others
        assert worker.total.counted == expected_total + lost
        assert await client.xlen(worker.consumer.dead_stream) == 0
        follow = seen["first_after"] - seen["switched"]
        print(
            f"worker failover: switch-master {seen['switched'] - seen['killed']:.2f}s after the "
            f"kill, worker accounting on the new master {follow:.2f}s after it; "
            f"{lost:.0f} relays re-counted"
        )
        assert follow <= WORKER_FOLLOW_BOUND_S
    finally:
        stop.set()
        await client.aclose()
        await master.aclose()
        await replica.aclose()
