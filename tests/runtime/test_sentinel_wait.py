"""``redis.wait_replicas`` on a real Sentinel group (1 master, 1 replica, 1 sentinel: no
failover here, only the client's master discovery).

- With ``wait_replicas: 1`` a worker's step does not return before the replica holds the
  batch (the replica frozen meanwhile), and then the replica holds the master's counts.
- With replication cut, each step's WAIT falls short: a warning and
  ``ha_miner_wait_replicas_short_total``, and nothing is lost on the master.
- Why the marker write goes first on the WAIT's connection: a bare WAIT on a connection that
  wrote nothing acknowledges at once, even while the replica is frozen.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from relayminer import RedisSessionStore, SessionStoreConfig
from relayminer.pipeline.publisher import RelayPublisher
from relayminer.pipeline.replication import wait_for_replicas
from relayminer.pipeline.worker import RelayWorker, WorkerConfig
from relayminer.runtime.connections import connect
from relayminer.runtime.embedded import RedisServerProcess
from tests.pipeline.factory import workload
from tests.runtime.sentinel_support import SentinelGroup, start_group, wait_until

pytestmark = pytest.mark.slow
SUP = "pokt1waitsentinel"


@pytest.fixture
async def group(tmp_path: Path) -> AsyncIterator[SentinelGroup]:
    g = await start_group(tmp_path / "sentinel", sentinels=1)
    try:
        yield g
    finally:
        g.stop()


def short_total() -> float:
    labels = {"supplier": SUP}
    return REGISTRY.get_sample_value("ha_miner_wait_replicas_short_total", labels) or 0.0


async def relay_total(client: aioredis.Redis) -> int:
    snaps = await RedisSessionStore(client, SessionStoreConfig(SUP)).get_by_supplier()
    return sum(s.relay_count for s in snaps)


@contextmanager
def frozen(server: RedisServerProcess) -> Iterator[None]:
    """The server stopped (SIGSTOP): its connections stay up, it acknowledges nothing."""
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


async def test_replica_holds_the_counts_when_the_step_returns(group: SentinelGroup) -> None:
    """The replica is frozen while the first batch is accounted: the worker's step does not
    return (it is blocked in WAIT on the master) until the replica has it; after every step the
    replica holds exactly the master's counts."""
    msgs, expected = workload(21, [SUP], ["sess-a", "sess-b"], 600, duplicate_every=13)
    total = sum(e.relay_count for e in expected.values())
    client = connect(group.url(), max_connections=8, pool_timeout=5)
    master, replica = group.client(group.master), group.client(group.replica)
    counts: list[tuple[int, int]] = []
    stepped = asyncio.Event()

    async def on_batch(_: object) -> None:
        stepped.set()
        # right after each accounting step: the replica already has what the master has
        counts.append((await relay_total(master), await relay_total(replica)))

    async def blocked_in_wait() -> bool:
        clients = await master.client_list()
        return any(c["cmd"] == "wait" and "b" in c["flags"] for c in clients)

    try:
        await RelayPublisher(client).publish_batch(msgs)
        before = short_total()
        config = WorkerConfig(
            consumer_name="w", batch_size=100, wait_replicas=1, wait_timeout_ms=30_000
        )
        worker = RelayWorker(client, SUP, config, on_batch=on_batch)
        with frozen(group.replica):
            draining = asyncio.create_task(worker.drain())
            await wait_until(blocked_in_wait, 10, "the worker blocked in WAIT")
            assert not stepped.is_set() and not draining.done()
            assert await relay_total(master) > 0  # the first batch is accounted on the master
        assert await draining == len(msgs)
        assert len(counts) == -(-len(msgs) // 100)  # one per accounting step
        assert all(on_master == on_replica for on_master, on_replica in counts)
        assert counts[-1] == (total, total)
        assert short_total() == before
    finally:
        await client.aclose()
        await master.aclose()
        await replica.aclose()


async def test_cut_replication_warns_counts_and_loses_nothing(
    group: SentinelGroup, caplog: pytest.LogCaptureFixture
) -> None:
    msgs, expected = workload(22, [SUP], ["sess-a"], 300)
    total = sum(e.relay_count for e in expected.values())
    client = connect(group.url(), max_connections=8, pool_timeout=5)
    master, replica = group.client(group.master), group.client(group.replica)
    try:
        await RelayPublisher(client).publish_batch(msgs)
        assert await master.wait(1, 5000) == 1
        # The replica can no longer authenticate to its master: nothing more is replicated.
        await replica.config_set("masteruser", "nobody")
        await replica.config_set("masterauth", "wrong")
        await master.client_kill_filter(_type="replica")
        before = short_total()
        config = WorkerConfig(
            consumer_name="w", batch_size=100, wait_replicas=1, wait_timeout_ms=50
        )
        worker = RelayWorker(client, SUP, config)
        with caplog.at_level(logging.WARNING, logger="relayminer.pipeline.replication"):
            assert await worker.drain() == len(msgs)
        assert short_total() - before == 3  # one per accounting step
        warnings = [r for r in caplog.records if r.name == "relayminer.pipeline.replication"]
        assert [r.getMessage() for r in warnings] == [
            "accounted batch acknowledged by 0 of 1 replicas within 50 ms (redis.wait_replicas)"
        ] * 3
        assert await relay_total(master) == total  # counted and acked on the master
        info = await master.xinfo_groups(worker.consumer.stream)
        assert info[0]["pending"] == 0
        assert await master.xlen(worker.consumer.stream) == 0
        assert await relay_total(replica) == 0  # the cut held
    finally:
        await client.aclose()
        await master.aclose()
        await replica.aclose()


async def test_wait_needs_the_marker_write_on_its_own_connection(group: SentinelGroup) -> None:
    """WAIT counts replicas past the offset of its *connection's* last write. A connection that
    wrote nothing gets an immediate, false acknowledgement from a frozen replica;
    :func:`wait_for_replicas` writes its marker on the WAIT's connection first, so it waits."""
    client = connect(group.url(), max_connections=8, pool_timeout=5)
    fresh = group.client(group.master)  # its own connection, which writes nothing
    try:
        assert await client.set(b"before", b"1")
        assert await wait_for_replicas(client, SUP, 1, 5000) == 1
        before = short_total()
        with frozen(group.replica):
            assert await client.set(b"during", b"2")
            assert await fresh.wait(1, 5000) == 1  # at once, yet the replica lacks "during"
            assert await wait_for_replicas(client, SUP, 1, 100) == 0
        assert short_total() - before == 1
        assert await wait_for_replicas(client, SUP, 1, 5000) == 1  # thawed: it catches up
        async with group.client(group.replica) as replica:
            assert await replica.get(b"during") == b"2"
    finally:
        await client.aclose()
        await fresh.aclose()
