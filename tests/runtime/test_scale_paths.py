"""What lets one replica own many suppliers (``docs/lifecycle.md``, "Priority and scale"):
the lifecycle priority over mining, the shared stream watcher, the replica's shared chain
reads, and the lifecycle's two-round-trip read of its live sessions."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from relayminer.chain.base import Block, ChainEvent, Msg, TxResult
from relayminer.chain.cache import SharedChainReads, supplier_events
from relayminer.config import parse_config
from relayminer.lifecycle.manager import LifecycleManager
from relayminer.pipeline.wakeups import StreamWakeups
from relayminer.pipeline.worker import RelayWorker, WorkerConfig
from relayminer.runtime.leases import Fence
from relayminer.runtime.miner import Miner, MinerHooks
from relayminer.runtime.priority import LifecyclePriority
from relayminer.sessions.model import SessionState
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig
from tests.conftest import RedisBackend
from tests.lifecycle.support import SUP1, SUP2, World


async def until(condition: Any, what: str, rounds: int = 10_000) -> None:
    """Let the loop run until ``condition()`` holds (bounded; no wall-clock sleeps)."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


# --- lifecycle priority ------------------------------------------------------------------------


async def test_mining_waits_while_a_pass_runs() -> None:
    priority = LifecyclePriority(max_pause_seconds=60)
    order: list[str] = []

    async def batch() -> None:
        await priority.mining_turn()
        order.append("batch")

    async with priority.lifecycle_pass():
        task = asyncio.create_task(batch())
        for _ in range(50):
            await asyncio.sleep(0)
        assert order == [] and priority.passes_running == 1
        order.append("pass")
    await task
    assert order == ["pass", "batch"] and priority.passes_running == 0
    assert await priority.mining_turn() == 0.0  # nothing running: no wait at all


async def test_a_stuck_pass_pauses_mining_for_at_most_the_bound() -> None:
    priority = LifecyclePriority(max_pause_seconds=0.01)
    held = asyncio.Event()
    release = asyncio.Event()

    async def stuck_pass() -> None:
        async with priority.lifecycle_pass():
            held.set()
            await release.wait()

    task = asyncio.create_task(stuck_pass())
    await held.wait()
    waited = await priority.mining_turn()  # returns although the pass is still running
    assert waited >= 0.01 and priority.passes_running == 1
    release.set()
    await task


async def test_passes_beyond_the_limit_queue_for_a_slot() -> None:
    priority = LifecyclePriority(max_pause_seconds=60, max_concurrent_passes=2)
    inside = 0
    most = 0
    gate = asyncio.Event()

    async def one_pass() -> None:
        nonlocal inside, most
        async with priority.lifecycle_pass():
            inside += 1
            most = max(most, inside)
            await gate.wait()
            inside -= 1

    tasks = [asyncio.create_task(one_pass()) for _ in range(5)]
    await until(lambda: inside == 2, "two passes inside")
    assert priority.passes_running == 5  # queued passes hold mining back too
    gate.set()
    await asyncio.gather(*tasks)
    assert most == 2 and priority.passes_running == 0


async def test_an_urgent_pass_takes_the_next_slot_before_earlier_ones() -> None:
    """A supplier with claims on chain (proofs may be owed) is served first; the others keep
    the order they asked in."""
    priority = LifecyclePriority(max_pause_seconds=60, max_concurrent_passes=1)
    order: list[str] = []
    release = asyncio.Event()

    async def one_pass(name: str, urgent: bool) -> None:
        async with priority.lifecycle_pass(urgent=urgent):
            order.append(name)
            if name == "holder":
                await release.wait()

    holder = asyncio.create_task(one_pass("holder", False))
    await until(lambda: order == ["holder"], "the slot held")
    waiting = [
        asyncio.create_task(one_pass(name, name.startswith("urgent")))
        for name in ("claims-1", "urgent-1", "claims-2", "urgent-2")
    ]
    await until(lambda: priority.passes_running == 5, "four passes queued")
    release.set()
    await asyncio.gather(holder, *waiting)
    assert order == ["holder", "urgent-1", "urgent-2", "claims-1", "claims-2"]


async def test_a_cancelled_waiter_gives_its_slot_to_the_next() -> None:
    """Cancelled while queued, or just after a slot was handed to it: either way the slot goes
    to the next waiter (none is lost, the limit holds)."""
    priority = LifecyclePriority(max_pause_seconds=60, max_concurrent_passes=1)
    order: list[str] = []
    release = asyncio.Event()
    tasks: dict[str, asyncio.Task[None]] = {}

    async def one_pass(name: str) -> None:
        async with priority.lifecycle_pass():
            order.append(name)

    async def holder() -> None:
        async with priority.lifecycle_pass():
            order.append("holder")
            await release.wait()
        tasks["handed"].cancel()  # handed the slot on exit, cancelled before it ran

    held = asyncio.create_task(holder())
    await until(lambda: order == ["holder"], "the slot held")
    for name in ("queued", "handed", "last"):
        tasks[name] = asyncio.create_task(one_pass(name))
    await until(lambda: priority.passes_running == 4, "three passes queued")
    tasks["queued"].cancel()
    await asyncio.gather(tasks["queued"], return_exceptions=True)
    release.set()
    await asyncio.gather(held, *tasks.values(), return_exceptions=True)
    assert order == ["holder", "last"] and priority.passes_running == 0
    assert tasks["handed"].cancelled()
    async with priority.lifecycle_pass():  # the one slot is free again
        order.append("after")
    assert order[-1] == "after"


def test_bad_priority_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_pause_seconds"):
        LifecyclePriority(max_pause_seconds=-1)
    with pytest.raises(ValueError, match="max_concurrent_passes"):
        LifecyclePriority(max_concurrent_passes=0)


async def test_a_worker_does_not_start_a_batch_while_a_pass_runs(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    priority = LifecyclePriority(max_pause_seconds=60)
    worker = RelayWorker(
        backend.client, SUP1, WorkerConfig(consumer_name="w", block_ms=50, priority=priority)
    )
    stop = asyncio.Event()
    try:
        sid = await world.relays(SUP1, 7, height=2)
        store = RedisSessionStore(backend.client, SessionStoreConfig(SUP1))
        async with priority.lifecycle_pass():
            task = asyncio.create_task(worker.run(stop))
            for _ in range(200):
                await asyncio.sleep(0)
            assert await store.get(sid) is None  # nothing mined while the pass runs
        await until(lambda: worker.total.counted == 7, "mined after the pass", rounds=100_000)
        snap = await store.get(sid)
        assert snap is not None and snap.relay_count == 7
    finally:
        stop.set()
        await task
        await world.close()


# --- the shared stream watcher ---------------------------------------------------------------


async def test_the_watcher_wakes_the_worker_of_a_stream_that_moved(backend: RedisBackend) -> None:
    wakeups = StreamWakeups(backend.client, watch_ms=50)
    stop = asyncio.Event()
    await backend.client.xadd("s1", {"k": "old"})  # before the watch: not a wake-up
    watcher = asyncio.create_task(wakeups.run(stop))
    try:
        wakeups.prepare("s1")
        waiting = asyncio.create_task(wakeups.wait("s1", 30))
        await until(lambda: "s1" in wakeups._last_ids, "the watcher saw s1", rounds=1_000_000)
        wakeups.prepare("s1")  # the worker's next read took what was there
        waiting2 = asyncio.create_task(wakeups.wait("s1", 30))
        await waiting  # the first wait ended (woken to read the old entry itself)
        await backend.new_client().xadd("s1", {"k": "new"})
        assert await waiting2 is True
    finally:
        stop.set()
        await watcher


def test_the_watch_blocks_longer_over_more_streams_up_to_a_bound() -> None:
    # One XREAD's CPU grows with the streams it names; idle, it repeats once per block: the
    # block grows with them so an idle watcher's CPU stays bounded at any number of suppliers.
    wakeups = StreamWakeups(None, watch_ms=100)  # type: ignore[arg-type]
    sizes = (0, 1, 100, 101, 250, 999, 1000, 1001, 10_000)
    expected = (100, 100, 100, 200, 300, 1000, 1000, 1000, 1000)
    assert tuple(wakeups.block_ms(n) for n in sizes) == expected
    assert StreamWakeups(None, watch_ms=20).block_ms(1000) == 200  # type: ignore[arg-type]
    assert StreamWakeups(None, watch_ms=5000).block_ms(1) == 5000  # type: ignore[arg-type]


async def test_a_watch_over_a_thousand_streams_wakes_the_one_that_moved(
    backend: RedisBackend,
) -> None:
    wakeups = StreamWakeups(backend.client, watch_ms=50)
    stop = asyncio.Event()
    names = [f"idle{i}" for i in range(999)] + ["busy"]
    watcher = asyncio.create_task(wakeups.run(stop))
    try:
        waits = {}
        for name in names:
            wakeups.prepare(name)
            waits[name] = asyncio.create_task(wakeups.wait(name, 60))
        await until(lambda: len(wakeups._last_ids) == 1000, "all watched", rounds=1_000_000)
        await asyncio.gather(*waits.values())  # the first watch wakes each to read on its own
        for name in names:
            wakeups.prepare(name)
            waits[name] = asyncio.create_task(wakeups.wait(name, 60))
        await backend.new_client().xadd("busy", {"k": "v"})
        assert await waits["busy"] is True
        assert not any(waits[n].done() for n in names[:-1])
    finally:
        stop.set()
        await watcher
        for task in waits.values():
            task.cancel()
        await asyncio.gather(*waits.values(), return_exceptions=True)


async def test_a_wait_without_entries_times_out(backend: RedisBackend) -> None:
    wakeups = StreamWakeups(backend.client, watch_ms=20)
    wakeups.prepare("quiet")
    assert await wakeups.wait("quiet", 0.01) is False  # no watcher: only the bound ends it
    wakeups.forget("quiet")


async def test_a_worker_on_the_watcher_mines_what_arrives(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    wakeups = StreamWakeups(backend.client, watch_ms=50)
    worker = RelayWorker(
        backend.client, SUP1, WorkerConfig(consumer_name="w", block_ms=50, wakeups=wakeups)
    )
    stop = asyncio.Event()
    tasks = [asyncio.create_task(wakeups.run(stop)), asyncio.create_task(worker.run(stop))]
    try:
        await world.relays(SUP1, 3, height=2)
        await until(lambda: worker.total.counted == 3, "first relays", rounds=1_000_000)
        await world.relays(SUP1, 4, height=2)
        await until(lambda: worker.total.counted == 7, "woken for more", rounds=1_000_000)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await world.close()


# --- shared chain reads ------------------------------------------------------------------------


class CountingChain:
    """Counts the calls that reach a chain."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await target(*args, **kwargs)

        return call


async def test_every_supplier_asks_once_what_they_all_ask(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    counting = CountingChain(world.chain)
    reads = SharedChainReads(counting)  # type: ignore[arg-type]
    try:
        for _ in range(3):
            await world.step(passes=False)
        block = await reads.latest_block()
        results = await asyncio.gather(
            *(reads.events(1, block.height) for _ in range(50)),
            *(reads.shared_params(None) for _ in range(50)),
            *(reads.shared_params(2) for _ in range(50)),
            *(reads.proof_params() for _ in range(50)),
            *(reads.block_hash(2) for _ in range(50)),
            *(reads.service("svc", 2) for _ in range(50)),
            *(reads.get_session("pokt1app", "svc", 2) for _ in range(50)),
        )
        assert all(isinstance(e, list) for e in results[:50])
        assert counting.calls["events"] == block.height  # once per committed height
        for name in ("shared_params", "proof_params", "block_hash", "service", "get_session"):
            expected = 2 if name == "shared_params" else 1  # live + at height 2
            assert counting.calls[name] == expected, name
        await world.step(passes=False)
        await reads.wait_for_block(block.height + 1)
        await reads.shared_params(None)
        assert counting.calls["shared_params"] == 3  # live params re-read after a new block
        assert await reads.block_hash(2) == await world.chain.block_hash(2)
    finally:
        await world.close()


async def test_waits_for_a_block_are_shared_and_answered_from_the_newest_seen(
    backend: RedisBackend,
) -> None:
    world = await World.create(backend.client)
    counting = CountingChain(world.chain)
    reads = SharedChainReads(counting)  # type: ignore[arg-type]
    try:
        height = (await reads.latest_block()).height
        waits = [asyncio.create_task(reads.wait_for_block(height + 1, 30)) for _ in range(20)]
        await until(lambda: counting.calls["wait_for_block"] == 1, "one shared wait")
        await world.step(passes=False)
        blocks = await asyncio.gather(*waits)
        assert {b.height for b in blocks} == {height + 1}
        assert counting.calls["wait_for_block"] == 1
        assert (await reads.wait_for_block(height)).height == height + 1  # no round trip
        assert counting.calls["wait_for_block"] == 1
        with pytest.raises(TimeoutError):
            await reads.wait_for_block(height + 5, 0.01)
    finally:
        await world.close()


async def test_tx_results_are_kept_once_in_a_block_and_the_rest_passes_through(
    backend: RedisBackend,
) -> None:
    class Minimal:
        def __init__(self) -> None:
            self.asked: Counter[str] = Counter()
            self.extra = "kept"

        async def tx_status(self, tx_hash: str) -> TxResult | None:
            self.asked[tx_hash] += 1
            return TxResult(tx_hash, 0) if tx_hash == "IN" else None

        async def claims(self, supplier: str) -> list[Any]:
            return [supplier]

        async def get_claim(self, supplier: str, session_id: str) -> Any:
            return (supplier, session_id)

        async def broadcast(self, msgs: Sequence[Msg]) -> TxResult:
            return TxResult("H", 0)

        async def events(self, a: int, b: int) -> list[ChainEvent]:
            return [ChainEvent(a, "E")]

        async def latest_block(self) -> Block:
            return Block(3, b"h" * 32, 0.0)

    inner = Minimal()
    reads = SharedChainReads(inner)  # type: ignore[arg-type]
    for _ in range(3):
        assert (await reads.tx_status("IN")) == TxResult("IN", 0)
        assert await reads.tx_status("OUT") is None
    assert inner.asked == Counter({"IN": 1, "OUT": 3})
    assert await SharedChainReads(object()).tx_status("X") is None  # type: ignore[arg-type]
    assert await reads.claims("s") == ["s"]
    assert await reads.get_claim("s", "x") == ("s", "x")
    assert (await reads.broadcast([])).tx_hash == "H"
    assert reads.extra == "kept"
    await reads.latest_block()
    assert await reads.events(3, 5) == [ChainEvent(h, "E") for h in (3, 4, 5)]
    assert backend.kind in ("fake", "real")


async def test_a_blocks_events_are_indexed_by_supplier_once_for_every_supplier() -> None:
    class Events:
        """A chain whose blocks 1..4 are committed; each names suppliers a and b."""

        def __init__(self) -> None:
            self.asked: Counter[int] = Counter()

        async def events(self, a: int, b: int) -> list[ChainEvent]:
            assert a == b  # the reads ask per block
            self.asked[a] += 1
            return [
                ChainEvent(a, "EventClaimCreated", {"supplier_operator_address": "a"}),
                ChainEvent(a, "EventClaimSettled", {"supplier_operator_address": "b"}),
                ChainEvent(a, "EventOther", {}),
            ]

        async def latest_block(self) -> Block:
            return Block(3, b"h" * 32, 0.0)

    inner = Events()
    reads = SharedChainReads(inner)  # type: ignore[arg-type]
    await reads.latest_block()  # block 3 is the newest committed one
    mine = await asyncio.gather(*(supplier_events(reads, s, 2, 4) for s in ("a", "b", "c") * 20))
    assert [e.height for e in mine[0]] == [2, 3, 4]
    assert {e.type for e in mine[0]} == {"EventClaimCreated"}
    assert {e.type for e in mine[1]} == {"EventClaimSettled"}
    assert mine[2] == []  # a supplier the block does not name
    assert all(m == mine[i % 3] for i, m in enumerate(mine))
    # Committed blocks are read (and indexed) once; block 4 is not committed yet: asked afresh.
    assert inner.asked[2] == 1 and inner.asked[3] == 1 and inner.asked[4] == 60
    # Any other chain: its events, filtered.
    direct = await supplier_events(inner, "b", 1, 1)  # type: ignore[arg-type]
    assert [(e.height, e.type) for e in direct] == [(1, "EventClaimSettled")]


# --- the live sessions in two round trips ---------------------------------------------------


async def test_live_sessions_of_several_states_in_one_read(backend: RedisBackend) -> None:
    world = await World.create(backend.client)
    try:
        a = await world.relays(SUP1, 2, height=2)
        b = await world.relays(SUP1, 3, height=2, app="pokt1app2")
        await world.run_to(6)  # both claimed at the claim window's first block
        store = RedisSessionStore(backend.client, SessionStoreConfig(SUP1))
        live = await store.get_by_states([SessionState.CLAIMED, SessionState.ACTIVE])
        assert sorted(s.session_id for s in live) == sorted([a, b])
        assert await store.get_by_states([SessionState.PROVED]) == []
        assert await store.get_by_states([]) == []
    finally:
        await world.close()


async def test_trees_are_built_ahead_one_supplier_at_a_time_until_the_deadline() -> None:
    """``building_ahead``: turns in the order asked; a turn not come by its deadline is
    skipped (yields False) without cancelling the turn in progress."""
    priority = LifecyclePriority()
    loop = asyncio.get_running_loop()
    order: list[str] = []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with priority.building_ahead(loop.time() + 60) as turn:
            assert turn
            order.append("first")
            first_in.set()
            await release.wait()

    async def late() -> None:
        async with priority.building_ahead(loop.time()) as turn:
            order.append(f"late:{turn}")

    async def queued() -> None:
        async with priority.building_ahead(loop.time() + 60) as turn:
            order.append(f"queued:{turn}")

    task = asyncio.create_task(first())
    await first_in.wait()
    await late()  # its deadline passed while the first turn was held
    waiting = asyncio.create_task(queued())
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(task, waiting)
    assert order == ["first", "late:False", "queued:True"]


async def test_with_tree_build_processes_several_suppliers_build_ahead_at_once() -> None:
    """``ahead_turns=2``: two turns held at once, the third waits for one of them."""
    priority = LifecyclePriority(ahead_turns=2)
    deadline = asyncio.get_running_loop().time() + 60
    inside: list[int] = []
    both_in = asyncio.Barrier(3)
    release = asyncio.Event()

    async def turn(n: int) -> None:
        async with priority.building_ahead(deadline) as ok:
            assert ok
            inside.append(n)
            if n < 2:
                await both_in.wait()
                await release.wait()

    first = [asyncio.create_task(turn(n)) for n in range(2)]
    await both_in.wait()  # both turns are held
    third = asyncio.create_task(turn(2))
    for _ in range(20):
        await asyncio.sleep(0)
    assert inside == [0, 1]  # the third waits for a free turn
    release.set()
    await asyncio.gather(*first, third)
    assert inside == [0, 1, 2]
    with pytest.raises(ValueError, match="ahead_turns"):
        LifecyclePriority(ahead_turns=0)


async def test_a_replica_builds_trees_ahead_within_a_share_of_a_block(
    backend: RedisBackend,
) -> None:
    """With the lifecycle priority (as the Miner runs it), the quiet block before the claim
    window builds the trees ahead, with a deadline (a share of the block time); a tree whose
    deadline has passed is not built, and the claim builds it then."""
    world = await World.create(backend.client, quiet_blocks=True)
    try:
        manager = LifecycleManager(backend.client, SUP1, world.chain, priority=LifecyclePriority())
        world.managers = {SUP1: manager}
        asked: list[tuple[list[str], float | None]] = []
        prebuild = manager.trees.prebuild_many

        async def recorded(sids: Sequence[str], *, deadline: float | None = None) -> list[str]:
            asked.append((list(sids), deadline))
            return await prebuild(sids, deadline=0.0)  # always too late: nothing built

        manager.trees.prebuild_many = recorded  # type: ignore[method-assign]
        sid = await world.relays(SUP1, 3, height=1)
        await world.run_to(5)
        # blocks 3 and 4 (a whole block without a relay of it) and 5 (grace period over)
        assert [sids for sids, _ in asked] == [[sid]] * 3
        assert all(d is not None for _, d in asked) and manager.trees.cached_sessions == []
        await world.step()  # block 6: the claim builds the tree itself
        assert world.reports[-1].claimed == [sid]
    finally:
        await world.close()


async def test_the_miner_tells_a_lifecycle_which_sessions_its_worker_mined(
    backend: RedisBackend,
) -> None:
    """The Miner wires each worker's batches to its supplier's lifecycle (trees built ahead
    wait for a block without relays of the session) and still calls its own batch hook."""
    world = await World.create(backend.client)
    try:
        seen: list[tuple[str, list[str]]] = []
        hooks = MinerHooks(on_batch=lambda sup, result: seen.append((sup, result.sessions)))
        config = parse_config({"suppliers": [SUP1]})
        miner = Miner(config, backend.client, world.chain, hooks=hooks)
        await backend.client.set("lease-key", "token")  # held: the worker's writes are fenced
        pipeline = miner._pipeline(SUP1, Fence("lease-key", "token"))
        mined: list[list[str]] = []
        pipeline.lifecycle.relays_mined = mined.append  # type: ignore[method-assign,assignment]
        sid = await world.relays(SUP1, 3, height=1)
        await pipeline.worker.drain()
        assert mined == [[sid]] and seen == [(SUP1, [sid])]
    finally:
        await world.close()


async def test_the_miner_builds_every_suppliers_trees_in_its_worker_processes(
    backend: RedisBackend,
) -> None:
    """``lifecycle.tree_build_processes``: one builder per replica, handed to every supplier's
    tree store (several suppliers build ahead at once, to keep its processes busy), and
    stopped with the replica."""
    world = await World.create(backend.client)
    try:
        config = parse_config({"suppliers": [SUP1], "lifecycle": {"tree_build_processes": 1}})
        miner = Miner(config, backend.client, world.chain)
        pipeline = miner._pipeline(SUP1, Fence("lease-key", "token"))
        assert pipeline.lifecycle.trees.builder is miner.tree_builder  # type: ignore[union-attr]
        assert miner.tree_builder.processes == 1 and miner.priority.ahead_turns == 2
        await miner.tree_builder.build_many([[]])
        assert len(miner.tree_builder.worker_pids()) == 1
        stop = asyncio.Event()
        stop.set()
        await miner.run(stop)
        assert miner.tree_builder.worker_pids() == []
        in_loop = Miner(parse_config({"suppliers": [SUP1]}), backend.client, world.chain)
        assert in_loop.tree_builder.in_loop and in_loop.priority.ahead_turns == 1
    finally:
        await world.close()


class _RecordingPriority(LifecyclePriority):
    """Records whether each lifecycle pass asked for its slot as urgent."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[bool] = []

    def lifecycle_pass(self, *, urgent: bool = False) -> Any:
        self.asked.append(urgent)
        return super().lifecycle_pass(urgent=urgent)


async def test_a_supplier_with_claims_on_chain_asks_for_urgent_passes(
    backend: RedisBackend,
) -> None:
    """Until its claim, a supplier's passes queue in turn; once it claimed (proofs may be
    owed), they go first until its sessions end."""
    world = await World.create(backend.client, quiet_blocks=True)
    try:
        priority = _RecordingPriority()
        manager = LifecycleManager(backend.client, SUP1, world.chain, priority=priority)
        world.managers = {SUP1: manager}
        del world.workers[SUP2]
        sid = await world.relays(SUP1, 3, height=1)
        await world.run_to(6)
        assert world.reports[-1].claimed == [sid]
        assert priority.asked and not any(priority.asked)
        await world.step()  # block 7: the claim is on chain
        assert priority.asked[-1] is True
        await world.run_to(16)  # proved (or not required), settled: nothing live any more
        assert (await world.session(SUP1, sid)).state.is_terminal
        before = len(priority.asked)
        await world.relays(SUP1, 2, height=17)
        await world.run_to(17)
        assert priority.asked[before:] and not any(priority.asked[before:])
    finally:
        await world.close()
