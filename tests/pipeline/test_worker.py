"""RelayWorker in process, on fakeredis and a real server (issue 'Relay pipeline' a, c, d, f)."""

from __future__ import annotations

import asyncio
import random

import pytest
from redis.asyncio import Redis

from relayminer import RedisSessionStore, SessionState, SessionStoreConfig
from relayminer.keys import KeyBuilder
from relayminer.pipeline.consumer import StreamConsumer
from relayminer.pipeline.publisher import RelayPublisher
from relayminer.pipeline.relays import MinedRelayMessage
from relayminer.pipeline.worker import MAX_BATCH_SIZE, BatchResult, RelayWorker, WorkerConfig
from relayminer.sessions.model import SessionSnapshot, encode_legacy_json
from relayminer.smst.layout import SMSTLayout
from relayminer.smst.proof import verify_closest_proof
from relayminer.smst.session_trees import open_session_trees
from relayminer.smst.tree_root import session_tree_root
from tests.conftest import RedisBackend
from tests.pipeline.factory import Expected, assert_complete_tree, relay_message, workload

SUP = "pokt1sup"
#: the storage layout of the running test (every test runs on both)
LAYOUT = SMSTLayout.JOURNAL


@pytest.fixture(autouse=True, params=list(SMSTLayout), ids=[x.value for x in SMSTLayout])
def layout(request: pytest.FixtureRequest) -> SMSTLayout:
    global LAYOUT
    LAYOUT = request.param
    return LAYOUT


async def publish(redis: Redis, msgs: list[MinedRelayMessage]) -> None:
    pub = RelayPublisher(redis)
    for i in range(0, len(msgs), 1000):
        await pub.publish_batch(msgs[i : i + 1000])


async def assert_mined(
    redis: Redis,
    expected: dict[tuple[str, str], Expected],
    *,
    in_order: bool = True,
    layout: SMSTLayout | None = None,
) -> None:
    """Counters, dedup sets and trees as expected. ``in_order``: the relays were mined in
    publication order, so even the stored node bytes equal the in-memory trie's (extension
    nodes record insertion history); otherwise the stored tree must be complete and exact.
    ``layout``: the layout the relays were mined with (default: the running test's of this
    module; other modules pass theirs, since the module global may hold a layout left over
    from a test of this module)."""
    layout = layout or LAYOUT
    for (sup, sess), exp in expected.items():
        store = RedisSessionStore(redis, SessionStoreConfig(sup))
        snap = await store.get(sess)
        assert snap is not None, (sup, sess)
        assert (snap.relay_count, snap.total_compute_units) == (exp.relay_count, exp.compute_units)
        assert await session_tree_root(redis, sup, sess) == exp.trie.root()
        if layout is SMSTLayout.JOURNAL:  # the journal is the gate: no dedup set, no nodes
            assert await redis.hlen(f"ha:smst:{sup}:{sess}:leaves") == exp.relay_count
            assert not await redis.exists(f"ha:miner:dedup:session:{sess}")
            assert not await redis.exists(f"ha:smst:{sup}:{sess}:nodes")
            continue
        assert await redis.smembers(f"ha:miner:dedup:session:{sess}") >= exp.hashes
        live_root = await redis.get(f"ha:smst:{sup}:{sess}:live_root")
        assert live_root == exp.trie.root()
        raw = await redis.hgetall(f"ha:smst:{sup}:{sess}:nodes")
        nodes = {bytes.fromhex(k.decode()): v for k, v in raw.items()}
        assert_complete_tree(nodes, live_root, exp)
        if in_order:
            exp.trie.commit()
            assert nodes == dict(exp.trie.store.items())


async def assert_stream_empty(redis: Redis, sup: str) -> None:
    assert await redis.xlen(f"ha:relays:{sup}") == 0
    assert (await redis.xpending(f"ha:relays:{sup}", "ha-miners"))["pending"] == 0


def worker(redis: Redis, sup: str = SUP, **kw: object) -> RelayWorker:
    kw = {"consumer_name": "c1", "batch_size": 200, "smst_layout": LAYOUT, **kw}
    config = WorkerConfig(**kw)  # type: ignore[arg-type]
    return RelayWorker(redis, sup, config)


# --- (a) several suppliers and sessions -------------------------------------------------------


async def test_relays_of_several_suppliers_and_sessions(backend: RedisBackend) -> None:
    suppliers, sessions = ["pokt1a", "pokt1b"], ["sess-1", "sess-2", "sess-3"]
    msgs, expected = workload(1, suppliers, sessions, 1500)
    await publish(backend.client, msgs)
    handled = {}
    for sup in suppliers:
        handled[sup] = await worker(backend.client, sup).drain()
    assert handled == {"pokt1a": 750, "pokt1b": 750}
    await assert_mined(backend.client, expected)
    for sup in suppliers:
        await assert_stream_empty(backend.client, sup)


async def test_relay_repeated_byte_for_byte_counts_once(backend: RedisBackend) -> None:
    msgs, expected = workload(2, [SUP], ["sess-1", "sess-2"], 400, duplicate_every=3)
    await publish(backend.client, msgs)
    w = worker(backend.client)
    assert await w.drain() == len(msgs)
    assert w.total.counted == 400 and w.total.duplicates == len(msgs) - 400
    await assert_mined(backend.client, expected)


async def test_redelivered_entries_count_once(backend: RedisBackend) -> None:
    msgs, expected = workload(3, [SUP], ["sess-1"], 300)
    await publish(backend.client, msgs)
    w = worker(backend.client)
    await w.consumer.ensure_group()
    entries = await w.consumer.read_new(10)
    first = await w.process(entries)
    again = await w.process(entries)  # the same entries delivered again
    assert (first.counted, again.counted, again.duplicates) == (200, 0, 200)
    await w.drain()
    await assert_mined(backend.client, expected)
    await assert_stream_empty(backend.client, SUP)


async def test_session_created_once_with_callback(backend: RedisBackend) -> None:
    created: list[SessionSnapshot] = []

    async def on_created(s: SessionSnapshot) -> None:
        created.append(s)

    msgs, _ = workload(4, [SUP], ["sess-1", "sess-2"], 100)
    await publish(backend.client, msgs)
    w = RelayWorker(
        backend.client,
        SUP,
        WorkerConfig(consumer_name="c", batch_size=30),
        on_session_created=on_created,
    )
    await w.drain()
    assert sorted(s.session_id for s in created) == ["sess-1", "sess-2"]
    snap = created[0]
    assert snap.state is SessionState.ACTIVE and snap.supplier_operator_address == SUP
    assert (snap.session_start_height, snap.session_end_height) == (1, 10)
    store = RedisSessionStore(backend.client, SessionStoreConfig(SUP))
    assert [s.session_id for s in await store.get_by_state(SessionState.ACTIVE)] == [
        "sess-1",
        "sess-2",
    ]


async def test_session_ttls_are_applied(backend: RedisBackend) -> None:
    msgs, _ = workload(5, [SUP], ["sess-1"], 10)
    await publish(backend.client, msgs)
    await worker(backend.client, session_ttl_seconds=5000, dedup_ttl_seconds=900).drain()
    r = backend.client
    assert 4990 <= await r.ttl(f"ha:miner:sessions:{SUP}:sess-1") <= 5000
    if LAYOUT is SMSTLayout.JOURNAL:
        assert 4990 <= await r.ttl(f"ha:smst:{SUP}:sess-1:leaves") <= 5000
        return
    assert 890 <= await r.ttl("ha:miner:dedup:session:sess-1") <= 900
    assert 4990 <= await r.ttl(f"ha:smst:{SUP}:sess-1:nodes") <= 5000
    assert 4990 <= await r.ttl(f"ha:smst:{SUP}:sess-1:live_root") <= 5000


# --- late relays: terminal and sealed sessions --------------------------------------------------


async def test_relays_for_terminal_session_are_acked_not_counted(backend: RedisBackend) -> None:
    rng = random.Random(6)
    await publish(backend.client, [relay_message(rng, SUP, "sess-1") for _ in range(5)])
    w = worker(backend.client)
    await w.drain()
    store = RedisSessionStore(backend.client, SessionStoreConfig(SUP))
    await store.update_state("sess-1", SessionState.CLAIM_WINDOW_CLOSED)
    root_before = await session_tree_root(backend.client, SUP, "sess-1")
    await publish(backend.client, [relay_message(rng, SUP, "sess-1") for _ in range(5)])
    assert await w.drain() == 5
    assert w.total.late == 5
    snap = await store.get("sess-1")
    assert snap is not None and snap.relay_count == 5
    assert await session_tree_root(backend.client, SUP, "sess-1") == root_before
    await assert_stream_empty(backend.client, SUP)


async def test_relays_for_sealed_tree_are_acked_not_counted(backend: RedisBackend) -> None:
    rng = random.Random(7)
    await publish(backend.client, [relay_message(rng, SUP, "sess-1") for _ in range(5)])
    w = worker(backend.client)
    await w.drain()
    trees = open_session_trees(
        LAYOUT, backend.client, SUP, keys=KeyBuilder(), ttl_seconds=600, fence=None
    )
    root = await trees.seal("sess-1")
    await publish(backend.client, [relay_message(rng, SUP, "sess-1") for _ in range(3)])
    assert await w.drain() == 3
    assert w.total.late == 3 and w.total.counted == 5
    assert await session_tree_root(backend.client, SUP, "sess-1") == root
    # the claimed root stays provable
    sealed, proof = await trees.prove_closest("sess-1", bytes(32))
    assert sealed == root and verify_closest_proof(proof, root)


# --- (d) poison entries and the retry cap ------------------------------------------------------


async def test_poison_entries_go_to_the_dead_letter_stream(backend: RedisBackend) -> None:
    r = backend.client
    rng = random.Random(8)
    good = relay_message(rng, SUP, "sess-1")
    stream = f"ha:relays:{SUP}"
    bad = {
        await r.xadd(stream, {"data": b"\xff\xff\xff\xff"}): "failed to unmarshal",
        await r.xadd(stream, {"payload": b"x"}): "missing 'data' field",
        await r.xadd(
            stream, {"data": relay_message(rng, SUP, "").SerializeToString()}
        ): "session_id is required",
        await r.xadd(
            stream, {"data": relay_message(rng, "pokt1other", "s").SerializeToString()}
        ): "stream of",
    }
    await RelayPublisher(r).publish(good)
    w = worker(r)
    assert await w.drain() == 5
    assert w.total.dead == 4 and w.total.counted == 1
    dead = await r.xrange(f"{stream}:dead")
    assert len(dead) == 4
    by_id = {fields[b"id"]: fields for _, fields in dead}
    assert set(by_id) == set(bad)
    for entry_id, reason in bad.items():
        assert reason in by_id[entry_id][b"reason"].decode()
        assert by_id[entry_id][b"consumer"] == b"c1"
    assert by_id[next(iter(bad))][b"data"] == b"\xff\xff\xff\xff"
    await assert_stream_empty(r, SUP)


async def test_entry_delivered_more_than_max_retries_is_dead_lettered(
    backend: RedisBackend,
) -> None:
    r = backend.client
    rng = random.Random(9)
    await RelayPublisher(r).publish(relay_message(rng, SUP, "sess-1"))
    consumer = StreamConsumer(r, SUP, "crashy")
    await consumer.ensure_group()
    (entry,) = await consumer.read_new(10)  # delivery 1, never acked (a crash)
    for expected_deliveries in (2, 3, 4):  # more deliveries by other consumers (XCLAIM)
        await r.xclaim(f"ha:relays:{SUP}", "ha-miners", "other", 0, [entry.entry_id])
        entries, _ = await consumer.reclaim(0)  # the miner's reclaim adds none
        assert [e.deliveries for e in entries] == [expected_deliveries]
    w = worker(r, max_retries=3)
    assert await w.drain() == 1  # 4th delivery > max_retries: dead-lettered, acked
    assert w.total.dead == 1 and w.total.counted == 0
    ((_, fields),) = await r.xrange(f"ha:relays:{SUP}:dead")
    assert b"delivered 4 times (max_retries=3)" in fields[b"reason"]
    assert fields[b"deliveries"] == b"4"
    await assert_stream_empty(r, SUP)


# --- (c) racing replicas -----------------------------------------------------------------------


async def test_replica_reclaiming_entries_in_flight_cannot_double_count(
    backend: RedisBackend,
) -> None:
    msgs, expected = workload(10, [SUP], ["sess-1", "sess-2"], 300)
    await publish(backend.client, msgs)
    a = worker(backend.new_client(), consumer_name="replica-a", batch_size=300)
    b = worker(backend.new_client(), consumer_name="replica-b", batch_size=300)
    await a.consumer.ensure_group()
    in_flight = await a.consumer.read_new(10)  # A is "still working" on these
    stolen, _ = await b.consumer.reclaim(0)  # B reclaims them meanwhile
    assert [e.entry_id for e in stolen] == [e.entry_id for e in in_flight]
    rb = await b.process(stolen)
    ra = await a.process(in_flight)
    assert (rb.counted, ra.counted, ra.duplicates) == (300, 0, 300)
    await assert_mined(backend.client, expected)
    await assert_stream_empty(backend.client, SUP)


async def test_two_workers_racing_reclaims_with_tiny_idle_timeout(backend: RedisBackend) -> None:
    msgs, expected = workload(11, [SUP], ["sess-1", "sess-2", "sess-3"], 2000)
    await publish(backend.client, msgs)
    stop = asyncio.Event()
    r = backend.client

    async def check_done(_: BatchResult) -> None:
        if await r.xlen(f"ha:relays:{SUP}") == 0:
            stop.set()

    workers = [
        RelayWorker(
            backend.new_client(),
            SUP,
            WorkerConfig(
                consumer_name=f"w{i}",
                batch_size=50,
                claim_idle_ms=1,
                block_ms=50,
                smst_layout=LAYOUT,
            ),
            on_batch=check_done,
        )
        for i in range(2)
    ]
    await asyncio.wait_for(asyncio.gather(*(w.run(stop) for w in workers)), timeout=120)
    assert sum(w.total.counted for w in workers) == 2000
    await assert_mined(r, expected, in_order=False)
    await assert_stream_empty(r, SUP)


# --- crash before the atomic step -------------------------------------------------------------


async def test_crash_between_smst_commit_and_accounting_loses_nothing(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    msgs, expected = workload(12, [SUP], ["sess-1"], 250)
    await publish(backend.client, msgs)
    crashing = worker(backend.new_client(), consumer_name="dies", batch_size=250)

    async def crash(*_: object) -> None:
        raise ConnectionError("process killed here")

    monkeypatch.setattr(crashing, "_account", crash)
    await crashing.consumer.ensure_group()
    with pytest.raises(ConnectionError):
        await crashing.process(await crashing.consumer.read_new(10))
    # Go: the tree already holds every leaf; journal: nothing is written before the one step.
    # Either way nothing is counted and everything is still pending.
    assert await session_tree_root(backend.client, SUP, "sess-1") == (
        None if LAYOUT is SMSTLayout.JOURNAL else expected[(SUP, "sess-1")].trie.root()
    )
    assert await backend.client.exists(f"ha:miner:sessions:{SUP}:sess-1") == 0
    assert (await backend.client.xpending(f"ha:relays:{SUP}", "ha-miners"))["pending"] == 250
    survivor = worker(backend.new_client(), consumer_name="survivor")
    assert await survivor.drain() == 250
    assert survivor.total.counted == 250
    await assert_mined(backend.client, expected)
    await assert_stream_empty(backend.client, SUP)


async def test_tree_resumed_by_another_replica_continues_byte_exact(backend: RedisBackend) -> None:
    msgs, expected = workload(13, [SUP], ["sess-1"], 600)
    await publish(backend.client, msgs[:300])
    await worker(backend.new_client(), consumer_name="first").drain()
    await publish(backend.client, msgs[300:])
    await worker(backend.new_client(), consumer_name="second").drain()  # resumes from live_root
    await assert_mined(backend.client, expected)


async def test_legacy_json_session_is_migrated_and_counted(backend: RedisBackend) -> None:
    r = backend.client
    legacy = SessionSnapshot(
        "sess-1",
        SUP,
        "svc",
        "app",
        1,
        10,
        SessionState.ACTIVE,
        relay_count=3,
        total_compute_units=30,
    )
    await r.set(f"ha:miner:sessions:{SUP}:sess-1", encode_legacy_json(legacy))
    rng = random.Random(14)
    await publish(r, [relay_message(rng, SUP, "sess-1", cu=10) for _ in range(4)])
    await worker(r).drain()
    assert await r.type(f"ha:miner:sessions:{SUP}:sess-1") == b"hash"
    snap = await RedisSessionStore(r, SessionStoreConfig(SUP)).get("sess-1")
    assert snap is not None and (snap.relay_count, snap.total_compute_units) == (7, 70)


# --- (f) the ack path ------------------------------------------------------------------------


async def test_ack_path_matches_the_server(backend: RedisBackend) -> None:
    r = backend.client
    info = await r.info("server") if backend.kind == "real" else {"redis_version": "fake"}
    consumer = StreamConsumer(r, SUP, "probe")
    await consumer.ensure_group()
    has_xackdel = await consumer.supports_xackdel()
    if backend.kind == "fake":
        assert has_xackdel  # fakeredis implements XACKDEL
    else:
        major, minor = (int(x) for x in str(info["redis_version"]).split(".")[:2])
        assert has_xackdel == ((major, minor) >= (8, 2))
    msgs, expected = workload(15, [SUP], ["sess-1"], 120)
    await publish(r, msgs)
    w = worker(r)
    await w.drain()
    assert w._ack_mode == ("xackdel" if has_xackdel else "xack")
    await assert_mined(r, expected)
    await assert_stream_empty(r, SUP)


async def test_xack_fallback_deletes_entries_too(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_xackdel(self: StreamConsumer) -> bool:
        return False

    monkeypatch.setattr(StreamConsumer, "supports_xackdel", no_xackdel)
    msgs, expected = workload(16, [SUP], ["sess-1"], 50)
    await publish(backend.client, msgs)
    w = worker(backend.client)
    await w.drain()
    assert w._ack_mode == "xack"
    await assert_mined(backend.client, expected)
    await assert_stream_empty(backend.client, SUP)


async def test_a_known_session_that_vanished_is_created_again(backend: RedisBackend) -> None:
    """Sessions seen once are sent without their snapshot; one that is gone since (evicted,
    expired) makes the step write nothing and ask for it, and the batch is counted then."""
    rng = random.Random(17)
    await publish(backend.client, [relay_message(rng, SUP, "sess-1") for _ in range(4)])
    w = worker(backend.client)
    assert await w.drain() == 4
    await backend.client.delete(f"ha:miner:sessions:{SUP}:sess-1")
    await publish(backend.client, [relay_message(rng, SUP, "sess-1") for _ in range(3)])
    assert await w.drain() == 3
    assert w.total.counted == 7 and w.total.sessions_created == 2  # created twice
    assert w.total.created == []  # the running total keeps counts, not every session id
    snap = await RedisSessionStore(backend.client, SessionStoreConfig(SUP)).get("sess-1")
    assert snap is not None and snap.relay_count == 3
    await assert_stream_empty(backend.client, SUP)


async def test_thin_batches_make_the_next_reads_larger(backend: RedisBackend) -> None:
    """Relays spread over many sessions (fewer than THIN_RELAYS_PER_SESSION each) make the
    worker read up to MAX_BATCH_SIZE entries next; batches that are not thin go back to the
    configured size. Every relay is counted once either way."""
    r, rng = backend.client, random.Random(7)
    w = worker(r, batch_size=20)
    spread = [relay_message(rng, SUP, f"s{i}") for i in range(60)]  # 1 relay a session
    await publish(r, spread)
    entries = await w.consumer.read_new(None)
    assert len(entries) == 20
    await w.process(entries)
    assert w.consumer.batch_size == MAX_BATCH_SIZE
    assert await w.drain() == 40  # the rest in one larger read
    dense = [relay_message(rng, SUP, "dense") for _ in range(30)]
    await publish(r, dense)
    entries = await w.consumer.read_new(None)
    assert len(entries) == 30  # still the larger read
    await w.process(entries)
    assert w.consumer.batch_size == 20  # 30 relays of one session: not thin
    store = RedisSessionStore(r, SessionStoreConfig(SUP))
    assert sum(s.relay_count for s in await store.get_by_supplier()) == 90
