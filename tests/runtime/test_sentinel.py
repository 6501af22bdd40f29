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
