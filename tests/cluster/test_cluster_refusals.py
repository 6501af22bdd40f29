"""What a cluster cannot run fails loudly, before writing anything (docs/redis-deployments.md,
"Redis Cluster"): the Go node layout's commit, on a cluster client."""

from __future__ import annotations

import hashlib

import pytest
from redis.asyncio.cluster import RedisCluster

from relayminer.keys import KeyBuilder
from relayminer.smst.redis_store import RedisSMSTStore

SUP = "pokt1refused"


async def test_the_go_layout_commit_is_refused_on_a_cluster(cluster_client: RedisCluster) -> None:
    store = RedisSMSTStore(cluster_client, SUP)  # type: ignore[arg-type]
    assert store.keys.hash_tagged
    leaf = (hashlib.sha256(b"r").digest(), b"r", 10)
    with pytest.raises(ValueError, match=r"smst\.layout: go cannot commit on a Redis Cluster"):
        await store.apply("sess-1", [leaf])
    kb = KeyBuilder.cluster()
    assert not await cluster_client.exists(kb.smst_nodes_key(SUP, "sess-1"))
    assert not await cluster_client.exists(kb.smst_live_root_key(SUP, "sess-1"))
