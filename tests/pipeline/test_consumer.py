"""StreamConsumer and the worker's loop (reads, reclaim, trim, group recovery, stop)."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from relayminer.pipeline.consumer import StreamConsumer
from relayminer.pipeline.publisher import RelayPublisher
from relayminer.pipeline.worker import BatchResult, RelayWorker, WorkerConfig
from tests.conftest import RedisBackend
from tests.pipeline.factory import relay_message, workload

SUP = "pokt1sup"
STREAM = f"ha:relays:{SUP}"


async def fill(backend: RedisBackend, n: int, seed: int = 1) -> None:
    msgs, _ = workload(seed, [SUP], ["sess-1"], n)
    await RelayPublisher(backend.client).publish_batch(msgs)


async def test_new_group_sees_entries_already_in_the_stream(backend: RedisBackend) -> None:
    await fill(backend, 7)
    c = StreamConsumer(backend.client, SUP, "c1", batch_size=100)
    entries = await c.read_new(10)  # NOGROUP: the group is created from id 0
    assert len(entries) == 7
    assert all(e.deliveries == 1 and not e.reclaimed for e in entries)
    assert await c.read_new(1) == []
    assert await c.pending_count() == 7


async def test_reclaim_follows_the_cursor_past_one_page(backend: RedisBackend) -> None:
    await fill(backend, 230)
    dead = StreamConsumer(backend.client, SUP, "dead", batch_size=1000)
    assert len(await dead.read_new(10)) == 230
    alive = StreamConsumer(backend.client, SUP, "alive", batch_size=50)
    cursor, claimed = b"0-0", []
    pages = 0
    while True:
        entries, cursor = await alive.reclaim(0, cursor)
        claimed += entries
        pages += 1
        if cursor in (b"0-0", "0-0"):
            break
    assert pages >= 5
    assert len({e.entry_id for e in claimed}) == 230
    # XAUTOCLAIM ... JUSTID: the miner's own reclaims add no delivery (only a read does).
    assert all(e.reclaimed and e.deliveries == 1 for e in claimed)


async def test_reclaim_respects_min_idle(backend: RedisBackend) -> None:
    await fill(backend, 5)
    owner = StreamConsumer(backend.client, SUP, "owner")
    await owner.read_new(10)
    other = StreamConsumer(backend.client, SUP, "other")
    entries, cursor = await other.reclaim(60_000)  # nothing idle for a minute yet
    assert entries == [] and cursor in (b"0-0", "0-0")


async def test_restart_under_same_name_reads_own_pending(backend: RedisBackend) -> None:
    await fill(backend, 12)
    first = StreamConsumer(backend.client, SUP, "stable-name", batch_size=5)
    assert len(await first.read_new(10)) == 5  # then "crashes"
    w = RelayWorker(
        backend.client,
        SUP,
        WorkerConfig(consumer_name="stable-name", batch_size=5, claim_idle_ms=3_600_000),
    )
    assert await w.drain() == 12
    assert w.total.counted == 12
    assert await backend.client.xlen(STREAM) == 0


async def test_trim_drops_entries_older_than_the_session_ttl(backend: RedisBackend) -> None:
    r = backend.client
    old_ms = int(time.time() * 1000) - 3_600_000
    rng = random.Random(3)
    for i in range(3):
        await r.xadd(
            STREAM, {"data": relay_message(rng, SUP, "s").SerializeToString()}, id=f"{old_ms + i}-0"
        )
    await fill(backend, 4)
    c = StreamConsumer(r, SUP, "c")
    assert await c.trim(max_age_ms=600_000) == 3
    assert await r.xlen(STREAM) == 4
    assert await StreamConsumer(r, "pokt1nostream", "c").trim(1000) == 0


async def test_stream_deleted_under_the_consumer_is_recreated(backend: RedisBackend) -> None:
    await fill(backend, 3)
    c = StreamConsumer(backend.client, SUP, "c")
    assert len(await c.read_new(10)) == 3
    await backend.client.delete(STREAM)
    assert await c.read_new(10) == []  # NOGROUP -> group and stream re-created
    await fill(backend, 2, seed=2)
    assert len(await c.read_new(10)) == 2


async def test_lag_and_pending_introspection(backend: RedisBackend) -> None:
    await fill(backend, 6)
    c = StreamConsumer(backend.client, SUP, "c", batch_size=4)
    await c.ensure_group()
    await c.ensure_group()  # BUSYGROUP is fine
    assert await c.lag() == 6
    await c.read_new(10)
    assert await c.lag() == 2
    assert await c.pending_count() == 4
    assert await StreamConsumer(backend.client, "nobody", "c").pending_count() == 0


async def test_run_until_stop_finishes_the_batch_in_hand(backend: RedisBackend) -> None:
    await fill(backend, 1000)
    stop = asyncio.Event()
    seen: list[int] = []

    def on_batch(result: BatchResult) -> None:
        seen.append(result.handled)
        stop.set()  # asked to stop when the first batch is accounted

    w = RelayWorker(
        backend.client,
        SUP,
        WorkerConfig(consumer_name="c", batch_size=100, block_ms=50),
        on_batch=on_batch,
    )
    await asyncio.wait_for(w.run(stop), timeout=30)
    # Everything already taken is finished (the batch in hand and at most the ones read ahead
    # while it was processed); nothing more is read; nothing is left half-done.
    assert 1 <= len(seen) <= 3 and all(n == 100 for n in seen)
    assert await backend.client.xlen(STREAM) == 1000 - sum(seen)
    assert (await backend.client.xpending(STREAM, "ha-miners"))["pending"] == 0


async def test_run_processes_entries_published_while_running(backend: RedisBackend) -> None:
    stop = asyncio.Event()
    total = 0

    def on_batch(result: BatchResult) -> None:
        nonlocal total
        total += result.counted
        if total >= 250:
            stop.set()

    w = RelayWorker(
        backend.client, SUP, WorkerConfig(consumer_name="c", block_ms=50), on_batch=on_batch
    )
    task = asyncio.create_task(w.run(stop))
    await fill(backend, 250)
    await asyncio.wait_for(task, timeout=30)
    assert total == 250


async def test_run_backs_off_while_redis_is_down(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prometheus_client import REGISTRY

    from relayminer.pipeline import worker as worker_module

    stop = asyncio.Event()
    backing_off = asyncio.Event()
    waits: list[float] = []
    real_wait = worker_module.wait_or_stop

    async def observed_wait(event: asyncio.Event, seconds: float) -> bool:
        waits.append(seconds)
        if len(waits) == 3:
            backing_off.set()
        return await real_wait(event, 0)  # do not actually wait out the backoff in a test

    monkeypatch.setattr(worker_module, "wait_or_stop", observed_wait)
    name, labels = "ha_transport_redis_reconnection_attempts_total", {"component": "relay_worker"}
    before = REGISTRY.get_sample_value(name, labels) or 0.0
    w = RelayWorker(backend.broken_client(), SUP, WorkerConfig(consumer_name="c"))
    task = asyncio.create_task(w.run(stop))
    await asyncio.wait_for(backing_off.wait(), timeout=30)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert waits[:3] == [0.05, 0.1, 0.2]  # capped exponential backoff
    assert (REGISTRY.get_sample_value(name, labels) or 0.0) >= before + 3


async def test_own_pending_entry_deleted_meanwhile_is_dead_lettered(backend: RedisBackend) -> None:
    await fill(backend, 3)
    first = StreamConsumer(backend.client, SUP, "same-name")
    taken = await first.read_new(10)
    await backend.client.xdel(STREAM, taken[0].entry_id)  # e.g. trimmed while pending
    w = RelayWorker(
        backend.client, SUP, WorkerConfig(consumer_name="same-name", claim_idle_ms=3_600_000)
    )
    assert await w.drain() == 3
    assert (w.total.counted, w.total.dead) == (2, 1)
    ((_, fields),) = await backend.client.xrange(f"{STREAM}:dead")
    assert fields[b"reason"] == b"entry deleted from the stream"
    assert (await backend.client.xpending(STREAM, "ha-miners"))["pending"] == 0


async def test_missing_stream_introspection(backend: RedisBackend) -> None:
    c = StreamConsumer(backend.client, "pokt1nobody", "c")
    assert await c.lag() is None
    assert await c.trim(1000) == 0
    assert await c.read_own_pending() == []  # creates the group on the way
    assert await c.lag() == 0


async def test_publisher_validates_before_sending(backend: RedisBackend) -> None:
    from relayminer.errors import ClosedError
    from relayminer.pipeline.relays import MinedRelayMessage

    pub = RelayPublisher(backend.broken_client())  # nothing may reach Redis
    good = MinedRelayMessage(session_id="s", session_end_height=5, supplier_operator_address=SUP)
    for bad, match in [
        (MinedRelayMessage(session_end_height=5, supplier_operator_address=SUP), "session_id"),
        (MinedRelayMessage(session_id="s", supplier_operator_address=SUP), "session_end_height"),
        (MinedRelayMessage(session_id="s", session_end_height=5), "supplier_operator_address"),
    ]:
        with pytest.raises(ValueError, match=match):
            await pub.publish_batch([good, bad])
    with pytest.raises(TypeError, match="MinedRelayMessage"):
        await pub.publish_batch([b"raw"])  # type: ignore[list-item]
    assert await pub.publish_batch([]) == []
    from relayminer.errors import StoreError

    with pytest.raises(StoreError, match="failed to publish"):
        await pub.publish(good)
    await pub.close()
    with pytest.raises(ClosedError):
        await pub.publish(good)


async def test_stream_key_of_the_wrong_type_is_an_error_not_a_retry(backend: RedisBackend) -> None:
    from redis.exceptions import ResponseError

    await backend.client.set(STREAM, b"not a stream")
    c = StreamConsumer(backend.client, SUP, "c")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await c.ensure_group()
    if backend.kind == "real":  # fakeredis 2.40 fails with an internal AttributeError here
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await c.read_new(None)
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await c.trim(1000)
    assert await c.lag() is None


async def test_run_refreshes_the_lag_and_pending_gauges(backend: RedisBackend) -> None:
    from prometheus_client import REGISTRY

    await fill(backend, 40)
    stop = asyncio.Event()
    w = RelayWorker(
        backend.client,
        "pokt1gauges",
        WorkerConfig(consumer_name="c", block_ms=50),
        on_batch=lambda _: stop.set(),
    )
    await backend.client.delete("ha:relays:pokt1gauges")
    await RelayPublisher(backend.client).publish_batch(
        workload(9, ["pokt1gauges"], ["sess-1"], 30)[0]
    )
    await asyncio.wait_for(w.run(stop), timeout=30)
    labels = {"supplier": "pokt1gauges"}
    assert (
        REGISTRY.get_sample_value("ha_transport_redis_stream_lag", labels) == 30
    )  # before reading
    assert REGISTRY.get_sample_value("ha_transport_redis_pending_messages", labels) == 0
