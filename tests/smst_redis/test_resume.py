"""Resuming a Redis-resident tree: after a crash between commits, during a commit, and over
invalid stored roots."""

from __future__ import annotations

import random
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from relayminer.smst.redis_store import EMPTY_ROOT, RedisSMSTStore, SMSTNotSealedError
from tests.conftest import RedisBackend
from tests.pipeline.factory import reachable_nodes
from tests.smst_redis.support import (
    SUPPLIER,
    Leaf,
    batched,
    memory_nodes,
    memory_trie,
    relay_leaves,
    snapshot,
    stored_nodes,
)


async def assert_tree_of(backend: RedisBackend, store: RedisSMSTStore, leaves: list[Leaf]) -> None:
    """The session "s" holds exactly the tree of ``leaves`` inserted in order, byte for byte."""
    oracle = memory_trie(leaves)
    assert await store.live_root("s") == oracle.root()
    assert await stored_nodes(backend.client, store, "s") == memory_nodes(oracle)


async def test_resume_after_forget_all_and_in_a_new_process(backend: RedisBackend) -> None:
    rng = random.Random(10)
    leaves = relay_leaves(rng, 1200)
    a, b, c = leaves[:500], leaves[500:900], leaves[900:]
    store = RedisSMSTStore(backend.client, SUPPLIER)
    for batch in batched(a, [200, 300]):
        assert await store.apply("s", batch)

    store.forget_all()  # the cache is gone, as after a crash
    for batch in batched(b, [1, 150, 249]):
        assert await store.apply("s", batch)
    await assert_tree_of(backend, store, a + b)

    other = RedisSMSTStore(backend.new_client(), SUPPLIER)  # another process
    for batch in batched(c, [120, 180]):
        assert await other.apply("s", batch)
    await assert_tree_of(backend, store, leaves)


async def test_a_commit_that_fails_before_reaching_redis_is_not_trusted_in_memory(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(11)
    leaves = relay_leaves(rng, 300)
    lost, later = leaves[100:200], leaves[200:]
    store = RedisSMSTStore(backend.client, SUPPLIER)
    assert await store.apply("s", leaves[:100])
    before = await snapshot(backend.client, store, "s")

    async def crash(*args: Any) -> int:
        raise RedisConnectionError("connection lost")  # after the trie was updated in memory

    with monkeypatch.context() as m:
        m.setattr(store, "_ship", crash)
        with pytest.raises(RedisConnectionError):
            await store.apply("s", lost)
    assert await snapshot(backend.client, store, "s") == before

    # The next batch must not carry the lost batch along (the in-memory tree had it).
    assert await store.apply("s", later)
    await assert_tree_of(backend, store, leaves[:100] + later)
    assert await store.apply("s", lost)  # the retry
    await assert_tree_of(backend, store, leaves[:100] + later + lost)


async def test_a_commit_whose_reply_is_lost_is_replayed_idempotently(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(12)
    leaves = relay_leaves(rng, 300)
    store = RedisSMSTStore(backend.client, SUPPLIER)
    assert await store.apply("s", leaves[:100])
    ship = store._ship

    async def committed_then_crash(*args: Any) -> int:
        await ship(*args)
        raise RedisConnectionError("connection lost")  # committed, but the reply never came

    with monkeypatch.context() as m:
        m.setattr(store, "_ship", committed_then_crash)
        with pytest.raises(RedisConnectionError):
            await store.apply("s", leaves[100:200])
    await assert_tree_of(backend, store, leaves[:200])
    assert await store.apply("s", leaves[100:200])  # the retry: already there
    assert await store.apply("s", leaves[200:])
    await assert_tree_of(backend, store, leaves)


async def test_a_connection_lost_in_the_middle_of_the_commit_request_writes_nothing(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half of the commit request reaches the server (WATCH, MGET, MULTI and part of the queued
    writes), then the connection breaks: the transaction is discarded with the connection."""
    rng = random.Random(13)
    leaves = relay_leaves(rng, 300)
    client = backend.new_client()
    store = RedisSMSTStore(client, SUPPLIER)
    assert await store.apply("s", leaves[:100])
    before = await snapshot(backend.client, store, "s")

    pool = client.connection_pool
    get_connection = pool.get_connection
    cut: list[int] = []

    async def get_cutting_connection(*args: Any, **kwargs: Any) -> Any:
        conn = await get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        send = conn.send_packed_command

        async def send_half(command: Any, check_health: bool = True) -> None:
            if isinstance(command, bytes) and len(command) > 10_000 and not cut:
                cut.append(len(command))
                await send(command[: len(command) // 2], check_health)
                raise RedisConnectionError("connection reset mid-request")
            await send(command, check_health)

        monkeypatch.setattr(conn, "send_packed_command", send_half)
        return conn

    with monkeypatch.context() as m:
        m.setattr(pool, "get_connection", get_cutting_connection)
        with pytest.raises(RedisConnectionError):
            await store.apply("s", leaves[100:200])
    assert cut
    assert await snapshot(backend.client, store, "s") == before

    assert await store.apply("s", leaves[200:])
    await assert_tree_of(backend, store, leaves[:100] + leaves[200:])
    assert await store.apply("s", leaves[100:200])
    await assert_tree_of(backend, store, leaves[:100] + leaves[200:] + leaves[100:200])


async def test_a_sealed_root_of_the_wrong_length_is_deleted_and_ignored(
    backend: RedisBackend,
) -> None:
    rng = random.Random(14)
    leaves = relay_leaves(rng, 200)
    store = RedisSMSTStore(backend.client, SUPPLIER)
    assert await store.apply("s", leaves[:100])
    await backend.client.set(store.root_key("s"), b"\x01" * 47)
    assert await store.sealed_root("s") is None
    with pytest.raises(SMSTNotSealedError):
        await store.prove_closest("s", bytes(32))

    fresh = RedisSMSTStore(backend.new_client(), SUPPLIER)
    assert await fresh.apply("s", leaves[100:])  # resumed from live_root
    assert await backend.client.exists(store.root_key("s")) == 0
    await assert_tree_of(backend, store, leaves)


async def test_a_live_root_of_the_wrong_length_is_deleted_and_a_fresh_tree_started(
    backend: RedisBackend,
) -> None:
    rng = random.Random(15)
    leaves = relay_leaves(rng, 200)
    store = RedisSMSTStore(backend.client, SUPPLIER)
    assert await store.apply("s", leaves[:100])
    for bad in (b"", b"\x02" * 49):
        await backend.client.set(store.live_root_key("s"), bad)
        assert await store.live_root("s") is None

        fresh = RedisSMSTStore(backend.new_client(), SUPPLIER)
        assert await fresh.apply("s", leaves[100:])
        oracle = memory_trie(leaves[100:])
        assert await store.live_root("s") == oracle.root()
        nodes = await stored_nodes(backend.client, store, "s")
        # The fresh tree is complete; the old tree's nodes are left behind (unreachable).
        assert reachable_nodes(nodes, oracle.root()) == memory_nodes(oracle)


async def test_both_roots_invalid_gives_a_fresh_tree_and_seal_replaces_the_bad_root(
    backend: RedisBackend,
) -> None:
    rng = random.Random(16)
    leaves = relay_leaves(rng, 50)
    store = RedisSMSTStore(backend.client, SUPPLIER)
    await backend.client.set(store.root_key("s"), b"short")
    await backend.client.set(store.live_root_key("s"), b"short")
    assert await store.apply("s", leaves)
    assert await backend.client.exists(store.root_key("s")) == 0
    await assert_tree_of(backend, store, leaves)

    await backend.client.set(store.root_key("s"), b"bad")
    assert await store.seal("s") == memory_trie(leaves).root()
    assert await store.sealed_root("s") == memory_trie(leaves).root()
    assert await store.seal("other") == EMPTY_ROOT


async def test_replay_onto_a_store_that_lost_the_last_commits_restores_them(
    backend: RedisBackend,
) -> None:
    """A failover to a replica that missed the last commits: the cached tree already holds the
    re-delivered leaves, but Redis does not. The replay must not trust the cache (it once did:
    the tree then missed those relays while the counters, re-counted, were right)."""
    rng = random.Random(31)
    leaves = relay_leaves(rng, 300)
    early, late = leaves[:200], leaves[200:]
    store = RedisSMSTStore(backend.client, SUPPLIER)
    assert await store.apply("s", early)
    live_root = await backend.client.get(store.live_root_key("s"))
    nodes = await backend.client.hgetall(store.nodes_key("s"))
    assert await store.apply("s", late)
    # the promoted replica holds the state before ``late`` was committed
    await backend.client.delete(store.nodes_key("s"), store.live_root_key("s"))
    await backend.client.set(store.live_root_key("s"), live_root)
    await backend.client.hset(store.nodes_key("s"), mapping=nodes)
    assert await store.apply("s", late)  # the re-delivered batch, same cached store
    await assert_tree_of(backend, store, leaves)
