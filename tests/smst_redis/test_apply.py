"""RedisSMSTStore.apply: byte-exact trees, one atomic commit per batch, sliding TTLs, replays."""

from __future__ import annotations

import random

from relayminer.smst.nodes import calc_root
from relayminer.smst.redis_store import RedisSMSTStore
from tests.conftest import RedisBackend
from tests.pipeline.factory import reachable_nodes
from tests.smst_redis.support import (
    SUPPLIER,
    TTL,
    Leaf,
    batched,
    canonical_leaves,
    memory_nodes,
    memory_trie,
    relay_leaves,
    snapshot,
    stored_nodes,
)


async def test_batches_of_several_sessions_and_suppliers_match_the_in_memory_trie(
    backend: RedisBackend,
) -> None:
    rng = random.Random(1)
    suppliers = ["pokt1alpha", "pokt1beta"]
    sessions = ["sess-1", "sess-2", "sess-3"]
    stores = {sup: RedisSMSTStore(backend.client, sup, ttl_seconds=TTL) for sup in suppliers}
    inserted: dict[tuple[str, str], list[Leaf]] = {}
    # Batches of assorted sizes, the sessions and suppliers interleaved.
    for round_ in range(6):
        for sup in suppliers:
            for sid in sessions:
                batch = relay_leaves(rng, rng.choice([1, 2, 17, 60, 150]) + round_)
                assert await stores[sup].apply(sid, batch) is True
                inserted.setdefault((sup, sid), []).extend(batch)

    for (sup, sid), leaves in inserted.items():
        store = stores[sup]
        oracle = memory_trie(leaves)
        assert await backend.client.get(store.live_root_key(sid)) == oracle.root()
        assert await store.live_root(sid) == oracle.root()
        assert oracle.root() == calc_root(canonical_leaves(leaves))
        # Field = lowercase hex digest, value = raw preimage: the in-memory store, byte for byte.
        assert await stored_nodes(backend.client, store, sid) == memory_nodes(oracle)
        assert await backend.client.exists(store.root_key(sid), store.stats_key(sid)) == 0
        for key in (store.nodes_key(sid), store.live_root_key(sid)):
            assert 0 < await backend.client.ttl(key) <= TTL


async def test_every_commit_slides_the_ttls_of_nodes_and_live_root(backend: RedisBackend) -> None:
    rng = random.Random(2)
    store = RedisSMSTStore(backend.client, SUPPLIER, ttl_seconds=TTL)
    assert await store.apply("s", relay_leaves(rng, 20))
    keys = [store.nodes_key("s"), store.live_root_key("s")]
    for key in keys:
        await backend.client.expire(key, 30)  # time has passed
    assert await store.apply("s", relay_leaves(rng, 20))
    for key in keys:
        assert 30 < await backend.client.ttl(key) <= TTL


async def test_after_every_batch_the_hash_holds_exactly_the_tree_of_live_root(
    backend: RedisBackend,
) -> None:
    rng = random.Random(3)
    store = RedisSMSTStore(backend.client, SUPPLIER)
    leaves = relay_leaves(rng, 900)
    done: list[Leaf] = []
    for batch in batched(leaves, [1, 1, 2, 5, 40, 3, 250, 1, 100, 7, 300]):
        assert await store.apply("s", batch)
        done += batch
        nodes = await stored_nodes(backend.client, store, "s")
        live_root = await store.live_root("s")
        assert live_root is not None
        assert reachable_nodes(nodes, live_root) == nodes  # no orphan, nothing missing
        assert live_root == calc_root(canonical_leaves(done))


async def test_a_batch_that_repeats_keys_keeps_the_last_value(backend: RedisBackend) -> None:
    rng = random.Random(4)
    store = RedisSMSTStore(backend.client, SUPPLIER)
    first = relay_leaves(rng, 30)
    key, value, _ = first[5]
    batch = [*first, (key, value, 99), first[0]]  # same key again with another weight, twice
    assert await store.apply("s", batch)
    oracle = memory_trie(batch)
    assert await store.live_root("s") == oracle.root()
    assert await stored_nodes(backend.client, store, "s") == memory_nodes(oracle)
    assert oracle.count() == 30


async def test_replaying_committed_leaves_changes_nothing(backend: RedisBackend) -> None:
    rng = random.Random(5)
    store = RedisSMSTStore(backend.client, SUPPLIER, ttl_seconds=TTL)
    leaves = relay_leaves(rng, 400)
    for batch in batched(leaves, [100, 150, 150]):
        assert await store.apply("s", batch)
    before = await snapshot(backend.client, store, "s")

    replays = [leaves[:100], leaves[390:], list(reversed(leaves[50:250])), leaves[7:8], leaves]
    for replay in replays:
        assert await store.apply("s", replay) is True  # cached tree
        assert await snapshot(backend.client, store, "s") == before
    for replay in replays:
        fresh = RedisSMSTStore(backend.new_client(), SUPPLIER, ttl_seconds=TTL)  # resumed tree
        assert await fresh.apply("s", replay) is True
        assert await snapshot(backend.client, store, "s") == before
    assert before["live_root"] == memory_trie(leaves).root()


async def test_an_empty_batch_writes_nothing(backend: RedisBackend) -> None:
    store = RedisSMSTStore(backend.client, SUPPLIER)
    assert await store.apply("s", []) is True
    assert await backend.client.keys("*") == []
