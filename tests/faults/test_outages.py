"""Issue 10 items 1, 3, 5 on a real private server: a failing session never stops the stream or
the process; Redis out of memory loses and dead-letters nothing; lost state is loud."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from relayminer.keys import KeyBuilder
from relayminer.pipeline.worker import RelayWorker, WorkerConfig
from relayminer.sessions.model import decode_hash
from relayminer.smst.tree_root import session_tree_root
from tests.faults.toolkit import PrivateServer, fill_memory_until_oom, set_maxmemory, until
from tests.pipeline.factory import Expected, relay_message, workload
from tests.pipeline.test_worker import publish

SUP = "pokt1fault"
STREAM = f"ha:relays:{SUP}"


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def r(private_server: PrivateServer) -> AsyncIterator[Redis]:
    client = private_server.client()
    yield client
    await client.aclose()


async def running(
    client: Redis, **kw: object
) -> tuple[RelayWorker, asyncio.Event, asyncio.Task[None]]:
    config = WorkerConfig(
        **{"consumer_name": "w", "batch_size": 200, "block_ms": 50, **kw}  # type: ignore[arg-type]
    )
    w = RelayWorker(client, SUP, config)
    stop = asyncio.Event()
    return w, stop, asyncio.create_task(w.run(stop))


async def stopped(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await asyncio.wait_for(task, timeout=10)


async def counters(client: Redis, sid: str) -> tuple[int, int]:
    raw = await client.hgetall(f"ha:miner:sessions:{SUP}:{sid}")
    if not raw:
        return 0, 0
    snap = decode_hash("k", raw)
    return snap.relay_count, snap.total_compute_units


async def drained(client: Redis) -> bool:
    pending = (await client.xpending(STREAM, "ha-miners"))["pending"]
    return bool(await client.xlen(STREAM) == 0 and pending == 0)


async def test_a_failing_session_never_stops_the_stream_or_the_process(r: Redis) -> None:
    # sess-bad's exactly-once gate (the leaf journal of the default layout) holds a foreign
    # value: its accounting fails every time. Before the fix the ResponseError ended
    # RelayWorker.run and the whole batch (good relays included) was dead-lettered after 3
    # restarts.
    await r.set(KeyBuilder().smst_leaves_key(SUP, "sess-bad"), b"foreign")
    msgs, expected = workload(7, [SUP], ["sess-a", "sess-b"], 300)
    rng = random.Random(8)
    bad = [relay_message(rng, SUP, "sess-bad") for _ in range(4)]
    await publish(r, msgs[:150] + bad + msgs[150:])
    _, stop, task = await running(r, claim_idle_ms=50, max_retries=3)
    try:
        await until(lambda: _dead_count(r, 4), deadline_s=15, what="the bad session dead-lettered")
        await until(lambda: drained(r), what="the stream drained")
        assert not task.done()  # the loop never ended
    finally:
        await stopped(stop, task)
    for (_, sid), exp in expected.items():
        assert await counters(r, sid) == (exp.relay_count, exp.compute_units)
    reasons = [f[b"reason"] for _, f in await r.xrange(f"{STREAM}:dead")]
    assert all(b"processing failed 3 times" in x and b"unexpected redis type" in x for x in reasons)
    assert await r.exists(f"ha:miner:sessions:{SUP}:sess-bad") == 0
    assert await r.exists(f"{STREAM}:failures") == 0  # acked entries take their records along


async def _dead_count(client: Redis, n: int) -> bool:
    return bool(await client.xlen(f"{STREAM}:dead") >= n)


async def test_out_of_memory_is_retried_in_place_and_loses_nothing(r: Redis) -> None:
    msgs, expected = workload(9, [SUP], ["sess-a", "sess-b"], 1000, duplicate_every=10)
    await publish(r, msgs)
    used = int((await r.info("memory"))["used_memory"])
    await set_maxmemory(r, used + 2 * 1024 * 1024, "noeviction")
    await fill_memory_until_oom(r)
    retries = _retries(SUP)
    w, stop, task = await running(r, max_retries=3)
    try:
        await until(
            lambda: _grew("ha_miner_redis_retries_total", retries, SUP),
            what="the worker retrying under OOM",
        )
        assert not task.done()
        await r.config_set("maxmemory", "0")  # the operator raises the memory
        await until(lambda: drained(r), what="the stream drained")
    finally:
        await stopped(stop, task)
    for (_, sid), exp in expected.items():
        assert await counters(r, sid) == (exp.relay_count, exp.compute_units)
        assert await session_tree_root(r, SUP, sid) == exp.trie.root()
    assert await r.xlen(f"{STREAM}:dead") == 0
    # In-place retries re-read nothing: every entry was delivered once.
    assert w.total.counted == sum(e.relay_count for e in expected.values())


def _retries(sup: str) -> float:
    """In-place retries of the batch steps that write (the journal writes in "account")."""
    return sum(
        metric("ha_miner_redis_retries_total", supplier=sup, operation=op)
        for op in ("commit trees", "account")
    )


async def _grew(name: str, before: float, sup: str) -> bool:
    return _retries(sup) > before


async def test_flushall_mid_run_is_reported_and_counting_resumes(
    r: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="relayminer.pipeline.epoch")
    before = metric("ha_miner_state_lost_total", supplier=SUP)
    first, _ = workload(10, [SUP], ["sess-a"], 200)
    second, expected = workload(11, [SUP], ["sess-a", "sess-b"], 300)
    _, stop, task = await running(r, gauges_interval_s=0.2)
    try:
        await publish(r, first)
        await until(lambda: drained(r), what="the first relays counted")
        assert await counters(r, "sess-a") == (200, sum(m.compute_units_per_relay for m in first))
        await r.flushall()  # Redis lost everything while the miner runs
        await until(lambda: _lost(before), what="the loss to be reported", deadline_s=10)
        await publish(r, second)
        await until(lambda: _counted(r, expected), what="the new relays counted")
    finally:
        await stopped(stop, task)
    assert any("lost the miner's state" in rec.getMessage() for rec in caplog.records)
    for (_, sid), exp in expected.items():
        assert await counters(r, sid) == (exp.relay_count, exp.compute_units)
        assert await session_tree_root(r, SUP, sid) == exp.trie.root()


async def _lost(before: float) -> bool:
    return metric("ha_miner_state_lost_total", supplier=SUP) > before


async def _counted(client: Redis, expected: dict[tuple[str, str], Expected]) -> bool:
    for (_, sid), exp in expected.items():
        if await counters(client, sid) != (exp.relay_count, exp.compute_units):
            return False
    return True


async def test_restart_without_persistence_is_reported(
    private_server: PrivateServer, r: Redis
) -> None:
    before = metric("ha_miner_state_lost_total", supplier=SUP)
    first, _ = workload(12, [SUP], ["sess-a"], 100)
    second, expected = workload(13, [SUP], ["sess-c"], 100)
    _, stop, task = await running(r, gauges_interval_s=0.2)
    try:
        await publish(r, first)
        await until(lambda: drained(r), what="the first relays counted")
        private_server.restart(empty=True)
        await until(lambda: _lost(before), what="the loss to be reported", deadline_s=15)
        await publish(r, second)
        await until(lambda: _counted(r, expected), what="the new relays counted")
    finally:
        await stopped(stop, task)
