"""Issue 10 items 1, 2, 6: hostile stream entries never block a stream, lose a good relay or get
counted wrongly (both backends; the real half is what reproduced the failures)."""

from __future__ import annotations

import hashlib
import random

import pytest
from redis.asyncio import Redis

from relayminer.pipeline.relays import MinedRelayMessage
from relayminer.pipeline.sorting import session_relays
from relayminer.pipeline.worker import RelayWorker, WorkerConfig
from relayminer.sessions.accounting import ComputeUnitsOverflowError, SessionRelays
from relayminer.sessions.model import MAX_INT64, SessionState, decode_hash
from relayminer.smst.layout import SMSTLayout
from tests.conftest import RedisBackend
from tests.pipeline.factory import relay_message
from tests.pipeline.test_worker import publish

SUP = "pokt1poison"
STREAM = f"ha:relays:{SUP}"
#: the storage layout of the running test (every test runs on both)
LAYOUT = SMSTLayout.JOURNAL


@pytest.fixture(autouse=True, params=list(SMSTLayout), ids=[x.value for x in SMSTLayout])
def layout(request: pytest.FixtureRequest) -> SMSTLayout:
    global LAYOUT
    LAYOUT = request.param
    return LAYOUT


def worker(redis: Redis, **kw: object) -> RelayWorker:
    kw = {"consumer_name": "c1", "batch_size": 100, "smst_layout": LAYOUT, **kw}
    config = WorkerConfig(**kw)  # type: ignore[arg-type]
    return RelayWorker(redis, SUP, config)


async def marked(redis: Redis, sid: str) -> set[bytes]:
    """The relay hashes the session's exactly-once gate holds (journal or dedup set)."""
    if LAYOUT is SMSTLayout.JOURNAL:
        return set(await redis.hkeys(f"ha:smst:{SUP}:{sid}:leaves"))
    return set(await redis.smembers(f"ha:miner:dedup:session:{sid}"))


async def dead_reasons(redis: Redis) -> list[str]:
    return [f[b"reason"].decode() for _, f in await redis.xrange(f"{STREAM}:dead")]


async def session(redis: Redis, sid: str) -> tuple[int, int]:
    snap = decode_hash("k", await redis.hgetall(f"ha:miner:sessions:{SUP}:{sid}"))
    return snap.relay_count, snap.total_compute_units


@pytest.mark.parametrize("poison", ["index", "state:active", "state:claimed", "a:b", "x\x00y"])
async def test_poison_session_ids_are_dead_lettered_at_parse_time(
    backend: RedisBackend, poison: str
) -> None:
    r = backend.client
    rng = random.Random(1)
    # An existing session makes the index and state sets exist (the case that killed the
    # worker before); the batch mixes good relays with the poison one.
    await publish(r, [relay_message(rng, SUP, "sess-1") for _ in range(3)])
    assert await worker(r).drain() == 3
    good = [relay_message(rng, SUP, "sess-1") for _ in range(5)]
    bad = relay_message(rng, SUP, "sess-1")
    bad.session_id = poison
    await publish(r, [*good[:2], bad, *good[2:]])
    assert await worker(r).drain() == 6
    assert await session(r, "sess-1") == (8, 80)
    (reason,) = await dead_reasons(r)
    assert "session_id" in reason
    assert await r.type(f"ha:miner:sessions:{SUP}:index") == b"set"
    assert await r.type(f"ha:miner:sessions:{SUP}:state:active") == b"set"
    assert await r.xlen(STREAM) == 0


async def test_a_failing_script_changes_nothing(backend: RedisBackend) -> None:
    r = backend.client
    # A foreign value under the dedup key: the accounting script must refuse before its first
    # write (before the fix it created the session hash and indexed it, then failed).
    await r.set("ha:miner:dedup:session:sess-x", b"foreign")
    w = worker(r)
    relays = SessionRelays("sess-x", [10], [hashlib.sha256(b"r").digest()], create=None)
    relays.create = session_relays(  # the worker's own snapshot
        "sess-x", [_relay("sess-x")]
    ).create
    with pytest.raises(Exception, match="unexpected redis type"):
        await w.coordinator.account_batch([relays])
    assert await r.exists(f"ha:miner:sessions:{SUP}:sess-x") == 0
    assert await r.exists(f"ha:miner:sessions:{SUP}:index") == 0
    assert await r.exists(f"ha:miner:sessions:{SUP}:state:active") == 0


def _relay(sid: str):  # type: ignore[no-untyped-def]
    from relayminer.pipeline.relays import Relay, parse_entry

    m = relay_message(random.Random(3), SUP, sid)
    parsed = parse_entry(b"1-0", {b"data": m.SerializeToString()})
    assert isinstance(parsed, Relay)
    return parsed


async def test_overflow_marks_nothing_and_dead_letters_the_entry(backend: RedisBackend) -> None:
    r = backend.client
    rng = random.Random(2)
    big = relay_message(rng, SUP, "sess-1", cu=MAX_INT64)
    small = [relay_message(rng, SUP, "sess-1", cu=10) for _ in range(5)]
    await publish(r, [big])
    assert await worker(r).drain() == 1
    await publish(r, small)
    assert await worker(r).drain() == 5
    assert await session(r, "sess-1") == (1, MAX_INT64)
    reasons = await dead_reasons(r)
    assert len(reasons) == 5 and all("2^63-1" in x for x in reasons)
    assert await marked(r, "sess-1") == {big.relay_hash}  # the overflowing relays were never marked
    # Replaying them (as a reclaim would) still counts nothing and marks nothing.
    await publish(r, small)
    assert await worker(r).drain() == 5
    assert await session(r, "sess-1") == (1, MAX_INT64)
    assert await marked(r, "sess-1") == {big.relay_hash}


async def test_accounting_script_checks_overflow_before_any_dedup_mark(
    backend: RedisBackend,
) -> None:
    r = backend.client
    w = worker(r)
    hashes = [hashlib.sha256(bytes([i])).digest() for i in range(3)]
    journal = LAYOUT is SMSTLayout.JOURNAL
    first = session_relays("sess-1", [_relay("sess-1")], journal=journal)
    first.compute_units, first.hashes = [MAX_INT64 - 5], [hashes[0]]
    await w.coordinator.account_batch([first])
    body = [b"r", b"r"] if journal else None
    second = SessionRelays("sess-1", [3, 3], hashes[1:], create=None, relay_bytes=body)
    with pytest.raises(ComputeUnitsOverflowError):  # 3 + 3 > 5: refused as a whole
        await w.coordinator.account_batch([second])
    assert await marked(r, "sess-1") == {hashes[0]}
    assert await session(r, "sess-1") == (1, MAX_INT64 - 5)
    # A duplicate adds nothing, so it never overflows.
    again = SessionRelays(
        "sess-1", [MAX_INT64], [hashes[0]], create=None, relay_bytes=body[:1] if body else None
    )
    (outcome,) = await w.coordinator.account_batch([again])
    assert outcome.counted == 0 and outcome.duplicates == 1


@pytest.mark.parametrize(
    ("relay_hash", "reason"),
    [(b"\x11" * 32, "hash mismatch"), (b"\x11" * 31, "32 bytes"), (b"\x11" * 33, "32 bytes")],
)
async def test_wrong_relay_hash_is_dead_lettered_missing_one_is_repaired(
    backend: RedisBackend, relay_hash: bytes, reason: str
) -> None:
    r = backend.client
    rng = random.Random(4)
    wrong = relay_message(rng, SUP, "sess-1")
    wrong.relay_hash = relay_hash
    missing = relay_message(rng, SUP, "sess-1", with_hash=False)
    await publish(r, [wrong, missing])
    assert await worker(r).drain() == 2
    (got,) = await dead_reasons(r)
    assert reason in got
    assert await session(r, "sess-1") == (1, 10)
    assert await marked(r, "sess-1") == {hashlib.sha256(missing.relay_bytes).digest()}


async def test_terminal_session_relays_count_nothing(backend: RedisBackend) -> None:
    r = backend.client
    rng = random.Random(5)
    await publish(r, [relay_message(rng, SUP, "sess-1")])
    assert await worker(r).drain() == 1
    await r.hset(f"ha:miner:sessions:{SUP}:sess-1", "state", SessionState.PROVED.value)
    await publish(r, [relay_message(rng, SUP, "sess-1")])
    w = worker(r)
    assert await w.drain() == 1 and w.total.late == 1
    assert await session(r, "sess-1") == (1, 10)


def test_message_type_is_the_wire_one() -> None:
    assert MinedRelayMessage.DESCRIPTOR.full_name == "pocket.ha.MinedRelayMessage"
