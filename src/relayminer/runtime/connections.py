"""Redis client construction, for every deployment (docs/redis-deployments.md).

Every client of relayminer is a ``redis.asyncio.Redis`` with ``decode_responses=False`` (keys,
hashes and stream payloads are binary) and ``protocol=2``: redis-py 8 defaults to RESP3, under
which some replies (XREADGROUP, XAUTOCLAIM) change shape depending on the parser in use.

The pool *blocks* when exhausted (up to ``pool_timeout`` seconds) instead of raising
``MaxConnectionsError``: the plain asyncio pool fails a command as soon as more commands are in
flight than it has connections, which made the demo fail at 100 suppliers.

- ``redis://``, ``rediss://``, ``unix://``: one server, through a ``BlockingConnectionPool``.
- ``redis-sentinel://``: the pool asks the sentinels for the current master before every new
  connection (redis-py's ``SentinelConnectionPool``), so a client follows a failover; a command
  caught by the failover fails with a ``ConnectionError`` and the caller's retry loop (the relay
  worker's, the lease manager's ...) reconnects to the promoted replica.
- ``redis-cluster://``: a ``redis.asyncio.cluster.RedisCluster`` (seed nodes; the rest of the
  cluster is discovered, and MOVED/ASK replies after a failover or a reshard are followed).
  Every component picks the hash-tagged key layout for such a client
  (:meth:`~relayminer.keys.KeyBuilder.for_client`), so every script and transaction of a
  supplier stays in one slot. It offers the command surface the miner uses (registered scripts
  routed by their keys, single-slot ``MULTI`` pipelines, ``SCAN`` on every primary, pub/sub)
  and is returned typed as ``Redis`` for the callers' sake.
"""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from relayminer.runtime.redis_url import (
    ClusterSettings,
    RedisUrlError,
    SentinelSettings,
    SingleServerSettings,
    parse_redis_url,
)

DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_POOL_TIMEOUT = 30.0
#: bound on each question to a sentinel, so one unreachable sentinel cannot stall master
#: discovery (the next sentinel is asked)
SENTINEL_SOCKET_TIMEOUT = 1.0
HEALTH_CHECK_INTERVAL = 30


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's sentinel pool (master discovery, failover following) with the blocking
    pool's bounded wait for a free connection.

    ``SentinelConnectionPool`` overrides only address discovery and ``reset``; connection
    checkout and release come from ``BlockingConnectionPool`` (method resolution order). Closing
    the pool also closes the clients the ``Sentinel`` keeps to each sentinel.
    """

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            manager = self.sentinel_manager
            if isinstance(manager, Sentinel):
                await manager.aclose()


def connect(
    url: str,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    socket_timeout: float | None = None,
) -> Redis:
    """A client for ``url``, owning its pool (``aclose()`` closes every connection).

    ``max_connections`` bounds the pool; a command waits up to ``pool_timeout`` seconds for a
    free connection, then fails with ``redis.exceptions.ConnectionError``; on a cluster
    ``max_connections`` is per node and not blocking (:func:`connect_cluster`). Raises
    :class:`~relayminer.runtime.redis_url.RedisUrlError` for a malformed URL.
    """
    if max_connections < 1:
        raise ValueError(f"max_connections must be >= 1, got {max_connections}")
    if pool_timeout <= 0:
        raise ValueError(f"pool_timeout must be > 0, got {pool_timeout}")
    settings = parse_redis_url(url)
    if isinstance(settings, ClusterSettings):
        return cast(Redis, _cluster_client(settings, max_connections, socket_timeout))
    if isinstance(settings, SentinelSettings):
        return _sentinel_master(settings, max_connections, pool_timeout, socket_timeout)
    assert isinstance(settings, SingleServerSettings)
    pool = BlockingConnectionPool.from_url(
        settings.url,
        protocol=2,
        decode_responses=False,
        max_connections=max_connections,
        timeout=pool_timeout,
        socket_timeout=socket_timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL,
    )
    return Redis.from_pool(pool)


def _sentinel_master(
    settings: SentinelSettings,
    max_connections: int,
    pool_timeout: float,
    socket_timeout: float | None,
) -> Redis:
    sentinel_kwargs: dict[str, Any] = {
        "protocol": 2,
        "socket_timeout": SENTINEL_SOCKET_TIMEOUT,
        "socket_connect_timeout": SENTINEL_SOCKET_TIMEOUT,
    }
    if settings.sentinel_password is not None:
        sentinel_kwargs["password"] = settings.sentinel_password
    if settings.sentinel_username is not None:
        sentinel_kwargs["username"] = settings.sentinel_username
    manager = Sentinel(  # type: ignore[no-untyped-call]
        [(e.host, e.port) for e in settings.sentinels], sentinel_kwargs=sentinel_kwargs
    )
    client: Redis = manager.master_for(
        settings.master_name,
        connection_pool_class=BlockingSentinelConnectionPool,
        protocol=2,
        decode_responses=False,
        db=settings.db,
        username=settings.username,
        password=settings.password,
        max_connections=max_connections,
        timeout=pool_timeout,
        socket_timeout=socket_timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL,
    )
    return client


def connect_cluster(
    url: str,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    socket_timeout: float | None = None,
) -> RedisCluster:
    """A ``RedisCluster`` client for a ``redis-cluster://`` URL (seed nodes; the rest of the
    cluster is discovered). ``max_connections`` is per node; redis-py's cluster client has no
    blocking pool, so more commands in flight on one node than that raise
    ``MaxConnectionsError``: size it to the concurrency on purpose.
    """
    settings = parse_redis_url(url)
    if not isinstance(settings, ClusterSettings):
        raise RedisUrlError(f"{settings.redacted}: connect_cluster needs a redis-cluster:// URL")
    return _cluster_client(settings, max_connections, socket_timeout)


def _cluster_client(
    settings: ClusterSettings, max_connections: int, socket_timeout: float | None
) -> RedisCluster:
    return RedisCluster(
        startup_nodes=[ClusterNode(e.host, e.port) for e in settings.nodes],
        username=settings.username,
        password=settings.password,
        protocol=2,
        decode_responses=False,
        max_connections=max_connections,
        socket_timeout=socket_timeout,
    )
