"""Relay de-duplication per session: a Redis SET of raw relay hashes.

Key ``{key_prefix}:session:{session_id}`` (default ``ha:miner:dedup:session:{sid}``); members are
the raw hash bytes (32 bytes for a sha256), never hex. Every mark pushes the set's TTL back to
the full window, ``ttl_blocks * block_time_seconds`` (the Go miner ignores its configuration and
always uses 300 s; this one honours it: the relay worker needs the set to outlive the session's
claim window, because the set is its exactly-once gate).

The relay worker does not call these methods: its accounting step
(:mod:`relayminer.sessions.accounting`) adds the hashes to the same sets inside the script that
counts and acks, and moves this module's hit, miss and mark metrics. ``is_duplicate`` is a plain
read (SISMEMBER); ``mark_processed`` marks without counting, which no accounting step does.

``is_duplicate`` fails open: on a Redis error it logs, counts and answers ``False`` so the relay
is processed (the SMST insert is idempotent). Marking propagates errors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from relayminer import metrics
from relayminer.errors import ClosedError, StoreError
from relayminer.keys import KeyBuilder
from relayminer.sessions.model import require_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeduplicatorConfig:
    key_prefix: str = "ha:miner:dedup"
    ttl_blocks: int = 10
    block_time_seconds: int = 30

    def __post_init__(self) -> None:
        require_id("key_prefix", self.key_prefix)
        for name in ("ttl_blocks", "block_time_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"DeduplicatorConfig.{name} must be an int")
            if value <= 0:
                raise ValueError(f"DeduplicatorConfig.{name} must be > 0, got {value}")

    @property
    def ttl_seconds(self) -> int:
        return self.ttl_blocks * self.block_time_seconds


@runtime_checkable
class Deduplicator(Protocol):
    async def is_duplicate(self, relay_hash: bytes, session_id: str) -> bool: ...
    async def mark_processed(self, relay_hash: bytes, session_id: str) -> None: ...
    async def mark_processed_batch(
        self, relay_hashes: Sequence[bytes], session_id: str
    ) -> None: ...
    async def cleanup_session(self, session_id: str) -> None: ...
    async def start(self) -> None: ...
    async def close(self) -> None: ...


def _require_hash(relay_hash: object, name: str = "relay_hash") -> bytes:
    if not isinstance(relay_hash, bytes):
        raise TypeError(f"{name} must be bytes, got {type(relay_hash).__name__}")
    if not relay_hash:
        raise ValueError(f"{name} must not be empty")
    return relay_hash


class RedisDeduplicator:
    """The Redis-set implementation of :class:`Deduplicator`."""

    def __init__(self, redis: Redis, config: DeduplicatorConfig | None = None) -> None:
        self._redis = redis
        #: the supplier whose sessions these are: needed on a Redis Cluster (:meth:`for_supplier`)
        self.supplier: str | None = None
        self.config = config if config is not None else DeduplicatorConfig()
        self._keys = KeyBuilder.for_client(redis).with_prefixes(dedup_prefix=self.config.key_prefix)
        self._closed = False

    @classmethod
    def for_supplier(
        cls, redis: Redis, config: DeduplicatorConfig | None, supplier: str
    ) -> RedisDeduplicator:
        """A deduplicator of ``supplier``'s sessions. Required on a Redis Cluster client: the
        cluster key layout puts a dedup set in its supplier's slot
        (``KeyBuilder.miner_dedup_session_key``); the Go layout's key has no supplier."""
        dedup = cls(redis, config)
        dedup.supplier = require_id("supplier", supplier)
        return dedup

    def key(self, session_id: str) -> str:
        sid = require_id("session_id", session_id)
        return self._keys.miner_dedup_session_key(sid, self.supplier)

    async def is_duplicate(self, relay_hash: bytes, session_id: str) -> bool:
        member = _require_hash(relay_hash)
        key = self.key(session_id)
        try:
            found = bool(await self._redis.sismember(key, member))  # type: ignore[arg-type]
        except (RedisError, OSError) as err:
            metrics.DEDUP_ERRORS.labels(operation="redis_check").inc()
            log.warning(
                "dedup check failed, processing the relay (fail-open)",
                extra={"session_id": session_id, "error": repr(err)},
            )
            return False
        (metrics.DEDUP_HITS if found else metrics.DEDUP_MISSES).inc()
        return found

    async def mark_processed(self, relay_hash: bytes, session_id: str) -> None:
        await self._mark([_require_hash(relay_hash)], session_id, "redis_mark")

    async def mark_processed_batch(self, relay_hashes: Sequence[bytes], session_id: str) -> None:
        if isinstance(relay_hashes, bytes | str):
            raise TypeError("relay_hashes must be a sequence of bytes, not a single value")
        members = [_require_hash(h, "relay_hashes[]") for h in relay_hashes]
        key = self.key(session_id)  # validates session_id even for an empty batch
        if members:
            await self._mark(members, session_id, "redis_batch_mark", key)

    async def _mark(
        self, members: list[bytes], session_id: str, operation: str, key: str | None = None
    ) -> None:
        key = key or self.key(session_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.sadd(key, *members)
                pipe.expire(key, self.config.ttl_seconds)
                await pipe.execute()
        except (RedisError, OSError) as err:
            metrics.DEDUP_ERRORS.labels(operation=operation).inc()
            raise StoreError(f"failed to mark processed ({session_id}): {err}") from err
        metrics.DEDUP_MARKED.inc(len(members))

    async def cleanup_session(self, session_id: str) -> None:
        await self.cleanup_sessions([session_id])

    async def cleanup_sessions(self, session_ids: Sequence[str]) -> None:
        """Drop the dedup sets of many sessions in one command."""
        if not session_ids:
            return
        try:
            await self._redis.delete(*(self.key(sid) for sid in session_ids))
        except (RedisError, OSError) as err:
            metrics.DEDUP_ERRORS.labels(operation="redis_cleanup").inc()
            raise StoreError(f"failed to cleanup sessions {list(session_ids)}: {err}") from err

    async def start(self) -> None:
        if self._closed:
            raise ClosedError("deduplicator is closed")

    async def close(self) -> None:
        self._closed = True
