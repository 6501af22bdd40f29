"""Cluster tests run on a real 3-master + 3-replica Redis Cluster the test session starts
(:mod:`tests.cluster.cluster_support`); failover tests kill masters, so they start their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from tests.cluster.cluster_support import ClusterGroup, start_cluster


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterGroup]:
    group = asyncio.run(start_cluster(tmp_path_factory.mktemp("cluster")))
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
async def cluster_client(redis_cluster: ClusterGroup) -> AsyncIterator[RedisCluster]:
    """A client of the shared cluster, emptied first (every primary)."""
    client = redis_cluster.client()
    await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def private_cluster(tmp_path: Path) -> AsyncIterator[ClusterGroup]:
    """A cluster of this test's own (it may kill nodes)."""
    group = await start_cluster(tmp_path / "cluster")
    try:
        yield group
    finally:
        group.stop()
