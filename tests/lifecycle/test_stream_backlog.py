"""Claims wait (one block at most) for relays still in the stream (lifecycle/backlog.py,
``lifecycle.claim_waits_for_stream``; off by default: the last test shows what that costs).

Timeline (tests/lifecycle/support.py): session 1 = blocks 1..4, grace period ends at 5, claims
can be sent at 6..8 (window 6..10, one safety block).
"""

from __future__ import annotations

from relayminer import metrics
from relayminer.keys import KeyBuilder
from relayminer.lifecycle.backlog import StreamBacklog, stream_id
from relayminer.lifecycle.config import LifecycleConfig
from relayminer.sessions.model import SessionState
from tests.conftest import RedisBackend
from tests.lifecycle.support import SUP1, World

WAITING = LifecycleConfig(claim_waits_for_stream=True)


async def late_session(world: World) -> str:
    """Session 1 of SUP1: 3 relays mined in blocks 2..4, and 5 more published in its grace
    block (5) that the worker has not read yet."""
    sid = ""
    for _ in range(3):  # blocks 2..4
        sid = await world.relays(SUP1, 1)
        await world.step()
    await world.relays(SUP1, 5, height=4)
    await world.step(drain=False)  # block 5: the worker is behind
    return sid


def backlog_claims() -> float:
    value = metrics.CLAIMS_WITH_STREAM_BACKLOG.labels(supplier=SUP1)._value.get()
    return float(value)


async def test_a_claim_waits_for_the_relays_still_in_the_stream(backend: RedisBackend) -> None:
    world = await World.create(backend.client, lifecycle_config=WAITING)
    try:
        sid = await late_session(world)
        await world.step(drain=False)  # block 6: claim window open, 5 relays unread: deferred
        assert (await world.session(SUP1, sid)).state is SessionState.ACTIVE
        assert not any(sid in r.claimed for r in world.reports)
        await world.step()  # block 7: the worker caught up: claimed with every relay
        snapshot = await world.session(SUP1, sid)
        assert snapshot.state is SessionState.CLAIMED
        assert snapshot.relay_count == 8
    finally:
        await world.close()


async def test_at_its_last_chance_a_claim_goes_out_whatever_the_stream_holds(
    backend: RedisBackend,
) -> None:
    world = await World.create(backend.client, lifecycle_config=WAITING)
    try:
        before = backlog_claims()
        sid = await late_session(world)
        await world.step(drain=False)  # block 6: deferred
        await world.step(drain=False)  # block 7: one pass could not claim it any more: sent
        snapshot = await world.session(SUP1, sid)
        assert snapshot.state is SessionState.CLAIMED
        assert snapshot.relay_count == 3  # what was mined; the 5 are refused as late
        assert backlog_claims() == before + 1
        await world.step()
        assert (await world.session(SUP1, sid)).relay_count == 3
    finally:
        await world.close()


async def test_the_backlog_reads_the_group_and_its_pending_entries(backend: RedisBackend) -> None:
    r = backend.client
    keys = KeyBuilder()
    backlog = StreamBacklog(r, SUP1, keys)
    assert await backlog.caught_up(4)  # no stream: nothing to wait for
    stream, group = keys.stream_key(SUP1), keys.consumer_group()
    first = await r.xadd(stream, {"data": b"x"})
    assert await backlog.caught_up(3)  # a stream nobody mines yet (no group)
    await r.xgroup_create(stream, group, id="0")
    await backlog.mark(8)
    assert not await backlog.caught_up(8)  # the entry up to the mark was never delivered
    await r.xreadgroup(group, "c", {stream: ">"}, count=10)
    assert not await backlog.caught_up(8)  # delivered, still pending
    await r.xack(stream, group, first)
    second = await r.xadd(stream, {"data": b"y"})  # after the mark: not waited for
    assert await backlog.caught_up(8)
    assert stream_id(second) > stream_id(first) > stream_id(None)


async def test_by_default_a_claim_does_not_wait(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    try:
        sid = await late_session(world)
        await world.step(drain=False)  # block 6: claimed at once with the 3 relays mined
        snapshot = await world.session(SUP1, sid)
        assert snapshot.state is SessionState.CLAIMED and snapshot.relay_count == 3
        await world.step()  # the 5 relays read now are refused as late
        assert (await world.session(SUP1, sid)).relay_count == 3
    finally:
        await world.close()
