"""Noticing that Redis lost the miner's state while it ran.

Redis restarted without persistence, a FLUSHALL, a failover to an empty replica: the stream and
its group come back empty (the consumer re-creates the group on NOGROUP) and sessions would start
again from zero without a word. To make that loud, the namespace carries an epoch key
(``ha:miner:epoch``, a random token) written when the miner first sees the namespace. A worker
remembers the token; when it finds the key missing or changed (checked after every NOGROUP, after
a reconnection, and every few seconds) the state it worked on is gone: it logs an ERROR, counts
``ha_miner_state_lost_total``, writes a new epoch and carries on with what is in Redis now.
"""

from __future__ import annotations

import logging
import secrets

from redis.asyncio import Redis

from relayminer import metrics
from relayminer.keys import KeyBuilder

log = logging.getLogger(__name__)


class StateEpoch:
    """The epoch token of one namespace, as seen by one worker."""

    def __init__(self, redis: Redis, keys: KeyBuilder, supplier: str) -> None:
        self._redis = redis
        self.key = keys.miner_state_epoch_key(supplier)
        self.supplier = supplier
        self.token: bytes | None = None
        # Export the series at 0 from the start, so `increase()` alerts see the first loss.
        metrics.STATE_LOST.labels(supplier=supplier)

    async def _adopt(self) -> bytes:
        """The current token, writing a new one when there is none (first writer wins)."""
        await self._redis.set(self.key, secrets.token_hex(16), nx=True)
        token: bytes | None = await self._redis.get(self.key)  # type: ignore[assignment]
        return token or b""

    async def start(self) -> None:
        if self.token is None:
            self.token = await self._adopt()

    async def check(self) -> bool:
        """True (after logging and counting it) when the state was lost since the last check."""
        if self.token is None:
            await self.start()
            return False
        current: bytes | None = await self._redis.get(self.key)  # type: ignore[assignment]
        if current == self.token:
            return False
        self.token = await self._adopt()
        metrics.STATE_LOST.labels(supplier=self.supplier).inc()
        log.error(
            "redis lost the miner's state while it ran (restart without persistence, flush or "
            "failover to an empty replica): sessions, dedup sets and trees written before are "
            "gone; counting resumes from what Redis holds now",
            extra={"supplier": self.supplier, "epoch_key": self.key},
        )
        return True
