"""Sealing a journal for its claim: compare-and-set on the leaf count, first seal wins."""

from __future__ import annotations

import random

import pytest
from redis.asyncio import Redis

import relayminer.smst.journal as journal
from relayminer.keys import Namespace
from relayminer.smst.journal import (
    JOURNAL_SEAL,
    insert_leaves,
    journal_keys,
    seal_session_tree,
)
from relayminer.smst.nodes import PLACEHOLDER, SMSTError
from relayminer.smst.trie import SparseMerkleSumTrie
from tests.conftest import RedisBackend
from tests.smst_journal.support import SESSION, SUPPLIER, TTL, oracle_root, relay_leaves

KEYS = journal_keys(SUPPLIER, SESSION)


async def test_seal_writes_root_and_stats_and_refuses_later_inserts(backend: RedisBackend) -> None:
    r = backend.client
    leaves = relay_leaves(random.Random(1), 40, weights=[7])
    await insert_leaves(r, SUPPLIER, SESSION, leaves, ttl_seconds=TTL)
    sealed = await seal_session_tree(r, SUPPLIER, SESSION, ttl_seconds=TTL)
    assert sealed.sealed_now and sealed.root == oracle_root(leaves)
    assert (sealed.count, sealed.sum) == (40, 280)
    assert sealed.trie is not None and sealed.trie.root() == sealed.root
    assert await r.get(KEYS.root) == sealed.root
    assert await r.get(KEYS.stats) == b"40:280"
    for key in (KEYS.root, KEYS.stats, KEYS.leaves):
        assert 0 < await r.ttl(key) <= TTL
    late = relay_leaves(random.Random(2), 3)
    assert await insert_leaves(r, SUPPLIER, SESSION, late, ttl_seconds=TTL) == -1
    # Sealing again (another replica): the same root, the tree still matches it.
    again = await seal_session_tree(r, SUPPLIER, SESSION, ttl_seconds=TTL)
    assert not again.sealed_now and again.root == sealed.root
    assert again.trie is not None and again.trie.root() == sealed.root


async def test_empty_session_seals_as_the_empty_root(backend: RedisBackend) -> None:
    sealed = await seal_session_tree(backend.client, SUPPLIER, SESSION, ttl_seconds=TTL)
    assert sealed.root == PLACEHOLDER and sealed.count == 0 and sealed.sealed_now
    assert await backend.client.get(KEYS.stats) == b"0:0"


async def test_stale_count_does_not_seal(backend: RedisBackend) -> None:
    r = backend.client
    await insert_leaves(r, SUPPLIER, SESSION, relay_leaves(random.Random(3), 5), ttl_seconds=TTL)
    reply = await r.eval(
        JOURNAL_SEAL, 3, KEYS.root, KEYS.leaves, KEYS.stats, bytes(48), 4, TTL, "4:4"
    )
    assert [int(reply[0]), int(reply[1])] == [0, 5]
    assert await r.exists(KEYS.root, KEYS.stats) == 0


async def test_a_batch_landing_during_the_build_makes_it_rebuild(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = backend.client
    first, late = relay_leaves(random.Random(4), 10), relay_leaves(random.Random(5), 2)
    await insert_leaves(r, SUPPLIER, SESSION, first, ttl_seconds=TTL)
    real_build = journal.build_session_tree
    builds = 0

    async def build_then_race(
        redis: Redis, supplier: str, sid: str, namespace: Namespace | None = None
    ) -> SparseMerkleSumTrie:
        nonlocal builds
        builds += 1
        trie = await real_build(redis, supplier, sid, namespace)
        if builds == 1:  # the worker's batch lands between the read and the seal
            await insert_leaves(r, SUPPLIER, SESSION, late, ttl_seconds=TTL)
        return trie

    monkeypatch.setattr(journal, "build_session_tree", build_then_race)
    sealed = await seal_session_tree(r, SUPPLIER, SESSION, ttl_seconds=TTL)
    assert builds == 2
    assert sealed.root == oracle_root(first + late) and sealed.count == 12


async def test_a_journal_that_keeps_growing_gives_up_with_a_clear_error(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = backend.client
    rng = random.Random(6)
    real_build = journal.build_session_tree

    async def build_then_grow(
        redis: Redis, supplier: str, sid: str, namespace: Namespace | None = None
    ) -> SparseMerkleSumTrie:
        trie = await real_build(redis, supplier, sid, namespace)
        await insert_leaves(r, SUPPLIER, SESSION, relay_leaves(rng, 1), ttl_seconds=TTL)
        return trie

    monkeypatch.setattr(journal, "build_session_tree", build_then_grow)
    with pytest.raises(SMSTError, match="kept growing"):
        await seal_session_tree(r, SUPPLIER, SESSION, ttl_seconds=TTL, max_attempts=3)
    assert await r.exists(KEYS.root) == 0


async def test_sealed_elsewhere_with_other_leaves_returns_the_sealed_root(
    backend: RedisBackend,
) -> None:
    r = backend.client
    await insert_leaves(r, SUPPLIER, SESSION, relay_leaves(random.Random(7), 3), ttl_seconds=TTL)
    other = b"\x11" * 32 + (9).to_bytes(8, "big") + (1).to_bytes(8, "big")
    await r.set(KEYS.root, other)  # e.g. sealed by a writer of the Go layout
    sealed = await seal_session_tree(r, SUPPLIER, SESSION, ttl_seconds=TTL)
    assert sealed.root == other and sealed.trie is None and not sealed.sealed_now
