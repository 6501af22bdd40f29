"""Bad stored nodes and bad leaves: an error, never a wrong root, and nothing written."""

from __future__ import annotations

import hashlib
import random

import pytest
from redis.exceptions import ResponseError

from relayminer.smst.nodes import (
    SMSTInvalidArgumentError,
    SMSTNodeCorruptError,
    SMSTNodeMissingError,
    parse_node,
)
from relayminer.smst.redis_store import RedisSMSTStore
from tests.conftest import RedisBackend
from tests.smst_redis.support import (
    SUPPLIER,
    Leaf,
    memory_trie,
    relay_leaves,
    snapshot,
    stored_nodes,
)


async def committed(backend: RedisBackend, n: int, seed: int) -> tuple[RedisSMSTStore, list[Leaf]]:
    leaves = relay_leaves(random.Random(seed), n)
    store = RedisSMSTStore(backend.client, SUPPLIER)
    assert await store.apply("s", leaves)
    return store, leaves


def leaf_digest_of(nodes: dict[bytes, bytes], key: bytes) -> bytes:
    path = hashlib.sha256(key).digest()
    for digest, preimage in nodes.items():
        if preimage[0] == 0 and preimage[1:33] == path:
            return digest
    raise AssertionError("leaf not stored")


async def test_a_missing_root_node_fails_resume_apply_and_proof(backend: RedisBackend) -> None:
    store, _ = await committed(backend, 200, 40)
    root = await store.live_root("s")
    assert root is not None
    await backend.client.hdel(store.nodes_key("s"), root.hex())
    before = await snapshot(backend.client, store, "s")

    fresh = RedisSMSTStore(backend.new_client(), SUPPLIER)
    with pytest.raises(SMSTNodeMissingError) as missing:
        await fresh.apply("s", relay_leaves(random.Random(41), 10))
    assert missing.value.digest == root
    assert await snapshot(backend.client, store, "s") == before  # no wrong root written

    assert await fresh.seal("s") == root
    with pytest.raises(SMSTNodeMissingError) as missing:
        await fresh.prove_closest("s", bytes(32))
    assert missing.value.digest == root


async def test_a_missing_leaf_fails_the_walks_that_reach_it(backend: RedisBackend) -> None:
    store, leaves = await committed(backend, 200, 42)
    nodes = await stored_nodes(backend.client, store, "s")
    key, value, weight = leaves[77]
    gone = leaf_digest_of(nodes, key)
    await backend.client.hdel(store.nodes_key("s"), gone.hex())
    before = await snapshot(backend.client, store, "s")

    fresh = RedisSMSTStore(backend.new_client(), SUPPLIER)
    # Re-inserting the missing leaf's key must load it: an error, and nothing written.
    with pytest.raises(SMSTNodeMissingError) as missing:
        await fresh.apply("s", [(key, value, weight)])
    assert missing.value.digest == gone
    assert await snapshot(backend.client, store, "s") == before

    await fresh.seal("s")
    with pytest.raises(SMSTNodeMissingError) as missing:
        await fresh.prove_closest("s", hashlib.sha256(key).digest())
    assert missing.value.digest == gone


async def test_an_empty_node_value_counts_as_missing(backend: RedisBackend) -> None:
    store, _ = await committed(backend, 100, 43)
    root = await store.live_root("s")
    assert root is not None
    await backend.client.hset(store.nodes_key("s"), root.hex(), b"")
    fresh = RedisSMSTStore(backend.new_client(), SUPPLIER)
    with pytest.raises(SMSTNodeMissingError):
        await fresh.apply("s", relay_leaves(random.Random(44), 5))
    await fresh.seal("s")
    with pytest.raises(SMSTNodeMissingError):
        await fresh.prove_closest("s", bytes(32))


@pytest.mark.parametrize("damage", ["garbage", "flipped byte"])
async def test_a_corrupt_node_is_reported_as_corrupt(backend: RedisBackend, damage: str) -> None:
    store, _ = await committed(backend, 100, 45)
    root = await store.live_root("s")
    assert root is not None
    nodes = await stored_nodes(backend.client, store, "s")
    if damage == "garbage":
        bad = b"\x07not a node"
    else:  # still parses as an inner node, but no longer hashes to its key
        good = nodes[root]
        parse_node(good, root)
        bad = good[:5] + bytes([good[5] ^ 1]) + good[6:]
    await backend.client.hset(store.nodes_key("s"), root.hex(), bad)
    before = await snapshot(backend.client, store, "s")

    fresh = RedisSMSTStore(backend.new_client(), SUPPLIER)
    with pytest.raises(SMSTNodeCorruptError):
        await fresh.apply("s", relay_leaves(random.Random(46), 5))
    assert await snapshot(backend.client, store, "s") == before
    await fresh.seal("s")
    with pytest.raises(SMSTNodeCorruptError):
        await fresh.prove_closest("s", bytes(32))


async def test_an_invalid_leaf_rejects_the_batch_and_leaves_no_trace(
    backend: RedisBackend,
) -> None:
    store, leaves = await committed(backend, 50, 47)
    before = await snapshot(backend.client, store, "s")
    more = relay_leaves(random.Random(48), 20)
    bad_batches: list[list[Leaf]] = [
        [*more[:10], (more[10][0], more[10][1], -1)],  # negative weight
        [*more[:10], (more[10][0], more[10][1], 1 << 64)],  # weight beyond uint64
    ]
    for batch in bad_batches:
        with pytest.raises(SMSTInvalidArgumentError):
            await store.apply("s", batch)
        assert await snapshot(backend.client, store, "s") == before
    # The leaves inserted in memory before the bad one are not committed later either.
    assert await store.apply("s", more[15:])
    assert await store.live_root("s") == memory_trie(leaves + more[15:]).root()


async def test_a_nodes_key_of_another_type_is_refused_before_anything_is_written(
    backend: RedisBackend,
) -> None:
    store = RedisSMSTStore(backend.client, SUPPLIER)
    await backend.client.set(store.nodes_key("s"), b"not a hash")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await store.apply("s", relay_leaves(random.Random(49), 10))
    assert await backend.client.exists(store.live_root_key("s")) == 0
    assert await backend.client.get(store.nodes_key("s")) == b"not a hash"
