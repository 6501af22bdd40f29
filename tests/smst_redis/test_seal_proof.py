"""seal, prove_closest (batched reads) and delete."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest

from relayminer.errors import LeaseLostError
from relayminer.runtime.leases import Fence
from relayminer.smst.nodes import digest_count, digest_sum
from relayminer.smst.proof import CompactClosestProof, verify_closest_proof
from relayminer.smst.redis_store import EMPTY_ROOT, RedisSMSTStore, SMSTNotSealedError
from relayminer.smst.trie import SparseMerkleSumTrie
from tests.conftest import RedisBackend
from tests.smst_redis.support import (
    SUPPLIER,
    TTL,
    CommandCounter,
    batched,
    memory_trie,
    relay_leaves,
    snapshot,
)

# --- seal -------------------------------------------------------------------------------------


async def test_seal_writes_root_and_stats_and_refuses_later_updates(backend: RedisBackend) -> None:
    rng = random.Random(30)
    leaves = relay_leaves(rng, 300)
    store = RedisSMSTStore(backend.client, SUPPLIER, ttl_seconds=TTL)
    for batch in batched(leaves, [100, 200]):
        assert await store.apply("s", batch)
    oracle = memory_trie(leaves)

    root = await store.seal("s")
    assert len(root) == 48 and root == oracle.root()
    assert await backend.client.get(store.root_key("s")) == root
    assert await store.sealed_root("s") == root
    count, total = oracle.count(), oracle.sum()
    assert (
        (count, total)
        == (digest_count(root), digest_sum(root))
        == (300, sum(w for *_, w in leaves))
    )
    assert await backend.client.get(store.stats_key("s")) == f"{count}:{total}".encode()
    for key in (store.root_key("s"), store.stats_key("s"), store.nodes_key("s")):
        assert 0 < await backend.client.ttl(key) <= TTL

    sealed = await snapshot(backend.client, store, "s")
    late = relay_leaves(rng, 20)
    assert await store.apply("s", late) is False
    assert await RedisSMSTStore(backend.new_client(), SUPPLIER).apply("s", late) is False
    assert await store.apply("s", leaves[:5]) is False  # even a replay
    assert await store.seal("s") == root  # twice: the same root
    assert await snapshot(backend.client, store, "s") == sealed


async def test_a_replica_with_a_cached_tree_cannot_commit_after_the_seal(
    backend: RedisBackend,
) -> None:
    rng = random.Random(31)
    a = RedisSMSTStore(backend.new_client(), SUPPLIER)
    b = RedisSMSTStore(backend.new_client(), SUPPLIER)
    assert await a.apply("s", relay_leaves(rng, 50))  # A keeps the tree in memory
    root = await b.seal("s")
    sealed = await snapshot(backend.client, a, "s")
    assert await a.apply("s", relay_leaves(rng, 50)) is False
    assert await snapshot(backend.client, a, "s") == sealed
    assert await a.sealed_root("s") == root


async def test_sealing_an_unknown_session_gives_the_empty_root_and_refuses_updates(
    backend: RedisBackend,
) -> None:
    store = RedisSMSTStore(backend.client, SUPPLIER, ttl_seconds=TTL)
    assert await store.seal("nothing") == EMPTY_ROOT == bytes(48)
    assert await backend.client.get(store.root_key("nothing")) == EMPTY_ROOT
    assert await backend.client.get(store.stats_key("nothing")) == b"0:0"
    assert await store.apply("nothing", relay_leaves(random.Random(32), 10)) is False
    assert await backend.client.exists(store.nodes_key("nothing")) == 0
    assert await store.seal("nothing") == EMPTY_ROOT

    _, proof = await store.prove_closest("nothing", bytes(32))
    expected = SparseMerkleSumTrie().prove_closest(bytes(32))
    assert proof.compact().to_bytes() == expected.compact().to_bytes()
    assert verify_closest_proof(proof, EMPTY_ROOT)


async def test_a_lost_lease_fences_off_commits_and_seals(backend: RedisBackend) -> None:
    rng = random.Random(33)
    fence = Fence(key="ha:test:lease", token="me")
    await backend.client.set(fence.key, "me")
    store = RedisSMSTStore(backend.client, SUPPLIER, fence=fence)
    leaves = relay_leaves(rng, 60)
    assert await store.apply("s", leaves[:30])
    before = await snapshot(backend.client, store, "s")

    await backend.client.set(fence.key, "someone-else")
    with pytest.raises(LeaseLostError):
        await store.apply("s", leaves[30:])
    with pytest.raises(LeaseLostError):
        await store.seal("s")
    assert await snapshot(backend.client, store, "s") == before

    await backend.client.set(fence.key, "me")  # re-acquired
    assert await store.apply("s", leaves[30:])
    assert await store.seal("s") == memory_trie(leaves).root()


# --- prove_closest ------------------------------------------------------------------------------


@pytest.fixture
def proof_leaves() -> list[tuple[bytes, bytes, int]]:
    return relay_leaves(random.Random(34), 3000)


async def test_proofs_from_redis_equal_the_in_memory_proofs(
    backend: RedisBackend, proof_leaves: list[tuple[bytes, bytes, int]]
) -> None:
    store = RedisSMSTStore(backend.client, SUPPLIER)
    for batch in batched(proof_leaves, [500] * 6):
        assert await store.apply("s", batch)
    root = await store.seal("s")
    oracle = memory_trie(proof_leaves)

    rng = random.Random(35)
    paths = [rng.randbytes(32) for _ in range(12)]
    paths += [hashlib.sha256(proof_leaves[i][0]).digest() for i in (0, 1234, 2999)]  # on a leaf
    paths += [bytes(32), b"\xff" * 32, b"\xaa" * 32]
    for path in paths:
        fresh = RedisSMSTStore(backend.new_client(), SUPPLIER)  # nothing cached
        proof_root, proof = await fresh.prove_closest("s", path)
        assert proof_root == root
        expected = oracle.prove_closest(path)
        assert proof == expected
        blob = proof.compact().to_bytes()
        assert blob == expected.compact().to_bytes()
        assert verify_closest_proof(proof, root)
        assert CompactClosestProof.from_bytes(blob).verify(root)


async def test_a_proof_reads_redis_in_a_constant_number_of_round_trips(
    backend: RedisBackend,
    proof_leaves: list[tuple[bytes, bytes, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = RedisSMSTStore(backend.client, SUPPLIER)
    for batch in batched(proof_leaves, [1000] * 3):
        assert await store.apply("s", batch)
    root = await store.seal("s")

    client = backend.new_client()
    fresh = RedisSMSTStore(client, SUPPLIER)
    one_by_one: list[bytes] = []
    fetch_one = fresh._fetch_one

    async def counting_fetch_one(sid: str, st: Any, digest: bytes) -> None:
        one_by_one.append(digest)
        await fetch_one(sid, st, digest)

    monkeypatch.setattr(fresh, "_fetch_one", counting_fetch_one)
    await fresh.prove_closest("s", bytes(32))  # loads the prefetch script on the server
    counter = CommandCounter(client)
    rng = random.Random(36)
    for _ in range(10):
        counter.commands.clear()
        proof_root, proof = await fresh.prove_closest("s", rng.randbytes(32))
        assert proof_root == root and verify_closest_proof(proof, root)
        # GET root + one EVALSHA of the prefetch script, whatever the depth of the tree.
        assert sorted(counter.commands) == ["EVALSHA", "GET"]
        assert len(proof.closest_proof.side_nodes) >= 8  # as many nodes read one by one
    assert one_by_one == []


async def test_proofs_need_a_sealed_tree(backend: RedisBackend) -> None:
    store = RedisSMSTStore(backend.client, SUPPLIER)
    with pytest.raises(SMSTNotSealedError):
        await store.prove_closest("unknown", bytes(32))
    assert await store.apply("s", relay_leaves(random.Random(37), 10))
    with pytest.raises(SMSTNotSealedError):
        await store.prove_closest("s", bytes(32))


# --- delete -------------------------------------------------------------------------------------


async def test_delete_removes_every_key_of_the_session_only(backend: RedisBackend) -> None:
    rng = random.Random(38)
    store = RedisSMSTStore(backend.client, SUPPLIER)
    other_leaves = relay_leaves(rng, 40)
    assert await store.apply("other", other_leaves)
    other = await snapshot(backend.client, store, "other")
    assert await store.apply("s", relay_leaves(rng, 40))
    await store.seal("s")
    keys = [
        store.nodes_key("s"),
        store.live_root_key("s"),
        store.root_key("s"),
        store.stats_key("s"),
    ]
    assert await backend.client.exists(*keys) == 4

    await store.delete("s")
    assert await backend.client.exists(*keys) == 0
    assert await snapshot(backend.client, store, "other") == other

    again = relay_leaves(rng, 30)  # the session starts over (nothing cached, nothing sealed)
    assert await store.apply("s", again)
    assert await store.live_root("s") == memory_trie(again).root()
