"""Redis client construction.

Every client of relayminer is a ``redis.asyncio.Redis`` with ``decode_responses=False`` (keys,
hashes and stream payloads are binary) and ``protocol=2``: redis-py 8 defaults to RESP3, under
which some replies (XREADGROUP, XAUTOCLAIM) change shape depending on the parser in use.
The pool *blocks* when exhausted instead of raising ``MaxConnectionsError``.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis


def connect(
    url: str,
    *,
    max_connections: int = 64,
    pool_timeout: float = 30.0,
    socket_timeout: float | None = None,
) -> Redis:
    """Create a client for ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""
    pool = BlockingConnectionPool.from_url(
        url,
        protocol=2,
        decode_responses=False,
        max_connections=max_connections,
        timeout=pool_timeout,
        socket_timeout=socket_timeout,
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)
