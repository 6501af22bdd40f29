"""session_tree_root for the leaf journal and for the Go node layout, on both backends."""

from __future__ import annotations

import random

import relayminer
from relayminer.keys import KeyBuilder, Namespace
from relayminer.smst.journal import insert_leaves, journal_keys, seal_session_tree
from relayminer.smst.nodes import PLACEHOLDER
from relayminer.smst.redis_store import RedisSMSTStore
from relayminer.smst.tree_root import session_tree_root
from tests.conftest import RedisBackend
from tests.smst_journal.support import SESSION, SUPPLIER, TTL, oracle_root, relay_leaves


def test_exported_from_the_package() -> None:
    assert relayminer.session_tree_root is session_tree_root
    assert "session_tree_root" in relayminer.__all__


async def test_no_leaves_anywhere_is_none(backend: RedisBackend) -> None:
    assert await session_tree_root(backend.client, SUPPLIER, SESSION) is None


async def test_journal_layout_root_follows_every_insert(backend: RedisBackend) -> None:
    r = backend.client
    leaves = relay_leaves(random.Random(1), 120)
    for n in (1, 2, 50, 120):
        await insert_leaves(r, SUPPLIER, SESSION, leaves[:n], ttl_seconds=TTL)
        assert await session_tree_root(r, SUPPLIER, SESSION) == oracle_root(leaves[:n])
    sealed = await seal_session_tree(r, SUPPLIER, SESSION, ttl_seconds=TTL)
    assert await session_tree_root(r, SUPPLIER, SESSION) == sealed.root


async def test_go_layout_root_is_the_live_then_the_sealed_root(backend: RedisBackend) -> None:
    r = backend.client
    store = RedisSMSTStore(r, SUPPLIER, ttl_seconds=TTL)
    leaves = relay_leaves(random.Random(2), 60)
    assert await store.apply(SESSION, leaves[:30])
    assert await session_tree_root(r, SUPPLIER, SESSION) == oracle_root(leaves[:30])
    assert await store.apply(SESSION, leaves[30:])
    sealed = await store.seal(SESSION)
    assert await session_tree_root(r, SUPPLIER, SESSION) == sealed == oracle_root(leaves)
    await r.delete(store.live_root_key(SESSION))
    assert await session_tree_root(r, SUPPLIER, SESSION) == sealed


async def test_go_layout_sealed_empty_is_none(backend: RedisBackend) -> None:
    store = RedisSMSTStore(backend.client, SUPPLIER, ttl_seconds=TTL)
    assert await store.seal(SESSION) == PLACEHOLDER
    assert await session_tree_root(backend.client, SUPPLIER, SESSION) is None


async def test_journal_wins_over_go_keys_and_namespaces_are_separate(
    backend: RedisBackend,
) -> None:
    r = backend.client
    ns = Namespace(base_prefix="prod")
    go = RedisSMSTStore(r, SUPPLIER, keys=KeyBuilder(ns), ttl_seconds=TTL)
    go_leaves, journal_leaves = relay_leaves(random.Random(3), 4), relay_leaves(random.Random(4), 6)
    assert await go.apply(SESSION, go_leaves)
    assert await session_tree_root(r, SUPPLIER, SESSION, ns) == oracle_root(go_leaves)
    assert await session_tree_root(r, SUPPLIER, SESSION) is None
    await insert_leaves(r, SUPPLIER, SESSION, journal_leaves, ttl_seconds=TTL, namespace=ns)
    assert journal_keys(SUPPLIER, SESSION, ns).leaves.startswith("prod:smst:")
    assert await session_tree_root(r, SUPPLIER, SESSION, ns) == oracle_root(journal_leaves)
