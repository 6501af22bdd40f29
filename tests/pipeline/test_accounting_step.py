"""The accounting step's packed arguments and the worker's TTL refresh policy, on fakeredis and
a real server, in both storage layouts (sessions/accounting.py)."""

from __future__ import annotations

import hashlib
import random

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from relayminer.keys import KeyBuilder
from relayminer.pipeline.batch import KNOWN_IDLE_SECONDS
from relayminer.pipeline.worker import RelayWorker, WorkerConfig
from relayminer.sessions.accounting import (
    ACCOUNT_BATCH,
    BatchAccounting,
    SessionRelays,
    worker_ttl_refresh_s,
)
from relayminer.sessions.model import SessionSnapshot, SessionState
from relayminer.smst.layout import SMSTLayout
from tests.conftest import RedisBackend
from tests.pipeline.factory import relay_message
from tests.pipeline.test_worker import publish

SUP = "pokt1acct"
TTL = 5000


@pytest.fixture(params=list(SMSTLayout), ids=[x.value for x in SMSTLayout])
def layout(request: pytest.FixtureRequest) -> SMSTLayout:
    return SMSTLayout(request.param)


def session_keys(layout: SMSTLayout, sid: str) -> list[str]:
    gate = (
        f"ha:smst:{SUP}:{sid}:leaves"
        if layout is SMSTLayout.JOURNAL
        else f"ha:miner:dedup:session:{sid}"
    )
    return [f"ha:miner:sessions:{SUP}:{sid}", gate]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def worker(redis: Redis, layout: SMSTLayout, clock: Clock) -> RelayWorker:
    config = WorkerConfig(consumer_name="c", session_ttl_seconds=TTL, smst_layout=layout)
    w = RelayWorker(redis, SUP, config)
    w.store.accounting.clock = clock
    return w


async def mine(redis: Redis, w: RelayWorker, rng: random.Random, n: int = 3) -> None:
    await publish(redis, [relay_message(rng, SUP, "sess-1") for _ in range(n)])
    assert await w.drain() == n


def test_worker_refresh_interval() -> None:
    assert worker_ttl_refresh_s(7200) == 60.0
    assert worker_ttl_refresh_s(300) == 30.0
    assert worker_ttl_refresh_s(5) == 0.0  # short TTLs: every step refreshes


async def test_worker_refreshes_ttls_at_most_once_per_interval(
    backend: RedisBackend, layout: SMSTLayout
) -> None:
    r, rng, clock = backend.client, random.Random(1), Clock()
    w = worker(r, layout, clock)
    interval = w.store.accounting.ttl_refresh_s
    assert interval == 60.0
    keys = session_keys(layout, "sess-1")
    await mine(r, w, rng)
    for key in keys:  # created by this step: TTL set
        assert TTL - 10 <= await r.ttl(key) <= TTL
        await r.expire(key, 100)  # as if time had passed
    clock.now += interval - 1
    await mine(r, w, rng)
    for key in keys:  # refreshed less than an interval ago: left alone
        assert 0 < await r.ttl(key) <= 100
    clock.now += 1
    await mine(r, w, rng)
    for key in keys:  # an interval later: refreshed
        assert TTL - 10 <= await r.ttl(key) <= TTL
    snap = await w.store.get("sess-1")
    assert snap is not None and snap.relay_count == 9 and snap.total_compute_units == 90


async def test_keys_a_step_creates_get_their_ttl_even_when_no_refresh_is_due(
    backend: RedisBackend, layout: SMSTLayout
) -> None:
    r, rng, clock = backend.client, random.Random(2), Clock()
    w = worker(r, layout, clock)
    session_key, gate = session_keys(layout, "sess-1")
    await mine(r, w, rng)
    await r.delete(gate)  # gone (evicted, say): written again by the next step
    await mine(r, w, rng)
    assert TTL - 10 <= await r.ttl(gate) <= TTL
    await r.delete(session_key)  # the session too: MISSING, resent with its snapshot
    await mine(r, w, rng)
    assert TTL - 10 <= await r.ttl(session_key) <= TTL
    snap = await w.store.get("sess-1")
    assert snap is not None and snap.relay_count == 3


async def test_a_failed_step_is_not_remembered_as_a_refresh(backend: RedisBackend) -> None:
    r = backend.client
    acc = BatchAccounting(r, SUP, w_keys(), session_ttl_seconds=TTL)
    acc.ttl_refresh_s = 60.0
    key = f"ha:miner:sessions:{SUP}:sess-1"
    await r.set(f"ha:smst:{SUP}:sess-1:leaves", b"foreign")
    with pytest.raises(ResponseError, match="unexpected redis type"):
        await acc.run([relays("sess-1", [5], create=True)])
    assert not await r.exists(key)
    await r.delete(f"ha:smst:{SUP}:sess-1:leaves")
    (outcome,) = await acc.run([relays("sess-1", [5], create=True)])
    assert outcome.created and outcome.counted == 1
    assert TTL - 10 <= await r.ttl(key) <= TTL


def w_keys() -> KeyBuilder:
    return KeyBuilder()


def relays(
    sid: str, cus: list[int], *, create: bool = False, journal: bool = True, seed: int = 0
) -> SessionRelays:
    rng = random.Random(seed)
    bodies = [rng.randbytes(50) for _ in cus]
    snapshot = SessionSnapshot(
        session_id=sid,
        supplier_operator_address=SUP,
        service_id="svc",
        application_address="pokt1app",
        session_start_height=1,
        session_end_height=10,
        state=SessionState.ACTIVE,
    )
    return SessionRelays(
        sid,
        cus,
        [hashlib.sha256(b).digest() for b in bodies],
        create=snapshot if create else None,
        relay_bytes=bodies if journal else None,
    )


@pytest.mark.parametrize("journal", [True, False], ids=["journal", "dedup"])
async def test_several_compute_unit_groups_and_a_session_sent_twice_count_exactly(
    backend: RedisBackend, journal: bool
) -> None:
    r = backend.client
    acc = BatchAccounting(r, SUP, w_keys(), session_ttl_seconds=TTL)
    first = relays("sess-1", [5, 7, 5, 9], create=True, journal=journal, seed=1)
    (outcome,) = await acc.run([first])
    assert (outcome.created, outcome.counted) == (True, 4)
    # Sent twice in one step (existing session): new relays, then overlapping ones.
    again = relays("sess-1", [5, 7, 5, 9], journal=journal, seed=1)  # all duplicates
    more = relays("sess-1", [3, 3], journal=journal, seed=2)
    outcomes = await acc.run([more, again, more])
    assert [o.counted for o in outcomes] == [2, 0, 0]
    assert [o.duplicates for o in outcomes] == [0, 4, 2]
    snap = await r.hgetall(f"ha:miner:sessions:{SUP}:sess-1")
    assert snap[b"relay_count"] == b"6"
    assert snap[b"total_compute_units"] == str(5 + 7 + 5 + 9 + 3 + 3).encode()


async def test_a_bad_record_argument_changes_nothing(backend: RedisBackend) -> None:
    r = backend.client
    acc = BatchAccounting(r, SUP, w_keys(), session_ttl_seconds=TTL)
    ok = relays("sess-1", [5, 5], create=True, seed=3)
    keys, args = acc._pack([ok], [True], TTL, None)
    blob = args[-3]
    assert isinstance(blob, bytes) and len(blob) > 40
    for bad, reason in (
        (blob[:-1], "truncated journal leaf record"),
        (blob + b"x", "trailing bytes"),
        (blob[:32] + b"\x00\x00\x00\x00" + blob[36:], "empty journal leaf value"),
    ):
        with pytest.raises(ResponseError, match=reason):
            await r.eval(ACCOUNT_BATCH, len(keys), *keys, *args[:-3], bad, *args[-2:])
        assert await r.dbsize() == 0
    assert args[7] == b"sess-1" and isinstance(args[8], bytes)  # the session's header
    words = args[8].split()  # n gate refresh g cu k: say 2 groups, send 1
    missing = b" ".join([*words[:3], b"2", *words[4:]])
    garbage, cut, extra = b"x", args[8][:-2], args[8] + b" 5 1"
    for header in (garbage, cut, extra, missing):
        bad_args = [*args[:8], header, *args[9:]]
        with pytest.raises(ResponseError, match="bad session header"):
            await r.eval(ACCOUNT_BATCH, len(keys), *keys, *bad_args)
        assert await r.dbsize() == 0


async def test_a_bad_relay_is_refused_before_anything_reaches_redis(
    backend: RedisBackend,
) -> None:
    r = backend.client
    acc = BatchAccounting(r, SUP, w_keys(), session_ttl_seconds=TTL)
    short = relays("sess-1", [5], create=True)
    short.hashes = [b"\x01" * 31]
    with pytest.raises(ValueError, match="32 bytes"):
        await acc.run([short])
    empty = relays("sess-1", [5], create=True)
    empty.relay_bytes = [b""]
    with pytest.raises(ValueError, match="non-empty"):
        await acc.run([empty])
    with pytest.raises(ValueError, match="compute_units"):
        await acc.run([relays("sess-1", [-1], create=True)])
    assert await r.dbsize() == 0


async def test_a_long_run_remembers_its_live_sessions_only(
    backend: RedisBackend, layout: SMSTLayout
) -> None:
    """What the worker remembers per session (TTL refreshes, encoded keys, sessions known to
    exist) follows the live sessions, not the run's history: the memory of a soak is flat. A
    session forgotten while it still gets relays is refreshed and counted as before."""
    r, rng, clock = backend.client, random.Random(3), Clock()
    w = worker(r, layout, clock)
    w.batches.clock = clock
    accounting = w.store.accounting
    old = [f"old-{i}" for i in range(700)]
    await publish(r, [relay_message(rng, SUP, sid) for sid in old])
    assert await w.drain() == len(old)
    assert set(accounting._refreshed) == set(old)  # nothing to forget yet
    assert set(w.batches.known) == set(old)
    clock.now += 2 * KNOWN_IDLE_SECONDS  # every old refresh is due again, every old session idle
    new = [f"new-{i}" for i in range(700)]
    await publish(r, [relay_message(rng, SUP, sid) for sid in new])
    assert await w.drain() == len(new)
    assert set(accounting._refreshed) == set(new)
    assert {sid for sid, _journal in accounting._session_args} == set(new)
    assert set(w.batches.known) == set(new)
    # An old session that gets a relay again: its TTLs are refreshed, its count goes on.
    await r.expire(f"ha:miner:sessions:{SUP}:old-1", 100)
    await publish(r, [relay_message(rng, SUP, "old-1")])
    assert await w.drain() == 1
    assert TTL - 10 <= await r.ttl(f"ha:miner:sessions:{SUP}:old-1") <= TTL
    snap = await w.store.get("old-1")
    assert snap is not None and snap.relay_count == 2
