"""Two replicas (two store objects, two connections) writing one session: compare-and-set on
``live_root``, every leaf exactly once, the tree complete."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from relayminer.smst.mapstore import MemoryMapStore
from relayminer.smst.nodes import calc_root
from relayminer.smst.redis_store import RedisSMSTStore
from relayminer.smst.trie import SparseMerkleSumTrie
from tests.conftest import RedisBackend
from tests.pipeline.factory import reachable_nodes
from tests.smst_redis.support import (
    SUPPLIER,
    Leaf,
    canonical_leaves,
    memory_nodes,
    memory_trie,
    relay_leaves,
    stored_nodes,
)


async def assert_union(backend: RedisBackend, store: RedisSMSTStore, leaves: list[Leaf]) -> None:
    """The session "s" holds a complete tree whose leaves are exactly ``leaves``."""
    unique = {key: (value, weight) for key, value, weight in leaves}
    root = await store.live_root("s")
    assert root == calc_root(canonical_leaves((k, v, w) for k, (v, w) in unique.items()))
    nodes = await stored_nodes(backend.client, store, "s")
    assert reachable_nodes(nodes, root) == nodes  # no orphan, nothing missing
    trie = SparseMerkleSumTrie.import_root(MemoryMapStore(nodes.items()), root)
    assert trie.count() == len(unique)
    for key, (value, weight) in unique.items():
        assert trie.get(key) == (value, weight)


def replicas(backend: RedisBackend) -> tuple[RedisSMSTStore, RedisSMSTStore]:
    return (
        RedisSMSTStore(backend.new_client(), SUPPLIER),
        RedisSMSTStore(backend.new_client(), SUPPLIER),
    )


async def test_interleaved_batches_of_two_replicas(backend: RedisBackend) -> None:
    rng = random.Random(20)
    a, b = replicas(backend)
    order: list[Leaf] = []
    for i in range(8):
        writer = (a, b)[i % 2]
        batch = relay_leaves(rng, 40)
        assert await writer.apply("s", batch)  # the other's cached tree is now stale
        order += batch
    # Each batch was committed whole on top of the previous one: the same bytes as one trie.
    oracle = memory_trie(order)
    assert await a.live_root("s") == oracle.root()
    assert await stored_nodes(backend.client, a, "s") == memory_nodes(oracle)
    await assert_union(backend, a, order)


async def test_a_writer_that_lost_the_race_reloads_and_replays(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A builds its commit on live_root X, B commits X -> Y first: A's compare-and-set fails,
    A reloads Y and replays its leaves."""
    rng = random.Random(21)
    a, b = replicas(backend)
    base, mine, theirs = relay_leaves(rng, 100), relay_leaves(rng, 60), relay_leaves(rng, 60)
    assert await a.apply("s", base)
    assert await b.apply("s", base[:10])  # B caches the tree too

    ready, go = asyncio.Event(), asyncio.Event()
    ship = a._ship
    shipped: list[int] = []

    async def ship_after_b(*args: Any) -> int:
        if not shipped:
            ready.set()
            await go.wait()
        code = await ship(*args)
        shipped.append(code)
        return code

    monkeypatch.setattr(a, "_ship", ship_after_b)

    async def b_commits_first() -> None:
        await ready.wait()
        assert await b.apply("s", theirs)
        go.set()

    ok, _ = await asyncio.gather(a.apply("s", mine), b_commits_first())
    assert ok is True
    assert shipped == [1, 0]  # conflict, then committed on B's tree
    oracle = memory_trie(base + theirs + mine)
    assert await stored_nodes(backend.client, a, "s") == memory_nodes(oracle)
    await assert_union(backend, a, base + mine + theirs)


async def test_a_write_between_the_check_and_exec_aborts_the_transaction(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WATCH: live_root passes the check, then another writer touches it before EXEC."""
    rng = random.Random(22)
    a, b = replicas(backend)
    leaves = relay_leaves(rng, 80)
    assert await a.apply("s", leaves[:40])
    live_key = a.live_root_key("s")

    pool = a._redis.connection_pool
    get_connection = pool.get_connection
    interfered: list[bool] = []

    async def get_racing_connection(*args: Any, **kwargs: Any) -> Any:
        conn = await get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        send = conn.send_packed_command

        async def send_exec_late(command: Any, check_health: bool = True) -> None:
            if command == b"*1\r\n$4\r\nEXEC\r\n" and not interfered:
                interfered.append(True)
                current = await b._redis.get(live_key)
                assert current is not None
                await b._redis.set(live_key, current)  # same value: still a write
            await send(command, check_health)

        monkeypatch.setattr(conn, "send_packed_command", send_exec_late)
        return conn

    monkeypatch.setattr(pool, "get_connection", get_racing_connection)
    ship = a._ship
    codes: list[int] = []

    async def recording_ship(*args: Any) -> int:
        code = await ship(*args)
        codes.append(code)
        return code

    monkeypatch.setattr(a, "_ship", recording_ship)
    assert await a.apply("s", leaves[40:])
    assert interfered and codes == [1, 0]
    oracle = memory_trie(leaves)
    assert await stored_nodes(backend.client, a, "s") == memory_nodes(oracle)


async def test_replicas_writing_concurrently(backend: RedisBackend) -> None:
    rng = random.Random(23)
    stores = [*replicas(backend), *replicas(backend)]
    everything: list[Leaf] = []
    shared = relay_leaves(rng, 30)  # some relays reach two replicas
    for _ in range(6):
        batches = [relay_leaves(rng, rng.randint(1, 80)) + rng.sample(shared, 5) for _ in stores]
        results = await asyncio.gather(
            *(store.apply("s", batch) for store, batch in zip(stores, batches, strict=True))
        )
        assert results == [True] * len(stores)
        everything += [leaf for batch in batches for leaf in batch]
        await assert_union(backend, stores[0], everything)
