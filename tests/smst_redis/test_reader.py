"""RedisSMSTReader on its own: what a reader sees of the trees a RedisSMSTStore committed."""

from __future__ import annotations

import random

from relayminer.smst.redis_reader import RedisSMSTReader
from relayminer.smst.redis_store import RedisSMSTStore
from tests.conftest import RedisBackend
from tests.smst_redis.support import SUPPLIER, memory_trie, relay_leaves


async def test_a_reader_loads_the_committed_tree_and_its_roots(backend: RedisBackend) -> None:
    leaves = relay_leaves(random.Random(7), 40)
    writer = RedisSMSTStore(backend.client, SUPPLIER)
    assert await writer.apply("s", leaves)
    reader = RedisSMSTReader(backend.new_client(), SUPPLIER)
    oracle = memory_trie(leaves)
    live = await reader.live_root("s")
    assert live == oracle.root() and await reader.sealed_root("s") is None
    trie = await reader.load_trie("s", live)
    assert trie.root() == oracle.root()
    assert trie.prove_closest(leaves[0][0]) == oracle.prove_closest(leaves[0][0])
    assert await writer.seal("s") == oracle.root()
    assert await reader.sealed_root("s") == oracle.root()
