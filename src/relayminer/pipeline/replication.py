"""``redis.wait_replicas``: after an accounting step, wait until N replicas hold it.

Replication is asynchronous: a batch the master accounted (counted *and* acked) can be lost in a
failover if the promoted replica never received it (``docs/redis-deployments.md``). ``WAIT N
timeout`` narrows that window; it bounds, it does not guarantee: the batch is already acked on
the master when WAIT is sent, so a short reply is logged and counted and the worker goes on.

Why a marker ``PUBLISH`` goes first, on the same connection: ``WAIT`` waits for the replication
offset of the *calling connection's* last propagated write. redis-py's asyncio client takes any
free connection from its pool for each command, so a bare ``WAIT`` may run on a connection that
wrote nothing (it returns at once, counting replicas that hold nothing of the batch) or that
wrote long ago. A transaction-less pipeline sends all of its commands on one connection, so the
pipeline ``PUBLISH; WAIT`` waits for an offset past the marker. The marker was executed after the
accounting script returned, and a replica applies the replication stream in order, so a replica
that acknowledges the marker holds the whole accounting step. ``PUBLISH`` is propagated to the
replicas by a master (not by Redis Cluster, which is refused for now) and writes no key.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from relayminer import metrics

__all__ = ["MARKER_CHANNEL", "wait_for_replicas"]

log = logging.getLogger(__name__)

#: the channel of the marker ``PUBLISH`` (nobody needs to subscribe; the message is the supplier)
MARKER_CHANNEL = "ha:miner:wait_replicas"


async def wait_for_replicas(redis: Redis, supplier: str, replicas: int, timeout_ms: int) -> int:
    """Wait (at most ``timeout_ms``) until ``replicas`` replicas hold every write this process
    made before the call; return how many acknowledged. Fewer than ``replicas`` (or an error:
    the batch is acked already, so nothing is retried) is logged as a warning and counted in
    ``ha_miner_wait_replicas_short_total``. ``replicas <= 0`` issues no command."""
    if replicas <= 0:
        return 0
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.publish(MARKER_CHANNEL, supplier)
            pipe.wait(replicas, timeout_ms)
            _, acked = await pipe.execute()
        acked = int(acked)
        error = None
    except (RedisError, OSError) as err:
        acked, error = 0, repr(err)
    if acked < replicas:
        metrics.WAIT_REPLICAS_SHORT.labels(supplier=supplier).inc()
        log.warning(
            "accounted batch acknowledged by %d of %d replicas within %d ms (redis.wait_replicas)",
            acked,
            replicas,
            timeout_ms,
            extra={
                "supplier": supplier,
                "wait_replicas": replicas,
                "acknowledged": acked,
                "timeout_ms": timeout_ms,
                "error": error,
            },
        )
    return acked
