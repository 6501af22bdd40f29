"""StreamConsumer: one supplier's relay stream, read through the shared consumer group.

Stream ``ha:relays:{supplier}``, group ``ha-miners`` (docs/redis-layout.md;
pocket-relay-miner `transport/redis/consumer.go`). Deliberate fixes
over the Go consumer (API.md fixes 1-3):

- reads use a bounded ``BLOCK`` (never 0), so the loop regains control to reclaim and to stop;
- :meth:`reclaim` runs XAUTOCLAIM and follows its cursor to the end, not one page;
- every delivery count is known (1 for a fresh read, XPENDING for re-deliveries), so the worker
  can dead-letter an entry delivered more than ``max_retries`` times; the miner's own re-reads
  (its pending entries after a restart, XAUTOCLAIM ... JUSTID of idle entries) do not count as
  deliveries: they say nothing about the entry (``docs/failure-behaviour.md``);
- a group that vanished (NOGROUP: Redis restarted empty, FLUSHALL) is re-created and counted in
  :attr:`StreamConsumer.group_recreations`, so the worker can tell that state was lost;
- acknowledging is XACKDEL ... DELREF where the server has it (probed once), else XACK + XDEL.

The consumer only reads and reports; acknowledging a processed batch happens inside the relay
worker's atomic accounting script, so "counted" and "acked" can never disagree.
"""

from __future__ import annotations

import logging
import time
from typing import Any, NamedTuple

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from relayminer import metrics
from relayminer.keys import KeyBuilder
from relayminer.sessions import scripts

log = logging.getLogger(__name__)


class StreamEntry(NamedTuple):
    """One entry as read (immutable; a named tuple: built thousands of times per batch)."""

    entry_id: bytes
    fields: dict[bytes, bytes] | None  # None: the entry was deleted while pending
    deliveries: int  # how many times the group delivered it, this delivery included
    reclaimed: bool  # came from our pending list or XAUTOCLAIM, not a fresh read


def _fresh_entries(raw: Any) -> list[StreamEntry]:
    """The entries of an XREADGROUP reply (redis-py already made each entry's fields a dict)."""
    return [
        StreamEntry(item[0], (item[1] or None) if len(item) > 1 else None, 1, False)
        for item in raw or ()
        if item is not None
    ]


class StreamConsumer:
    """Reads, reclaims and trims one supplier's stream for one consumer of the group."""

    def __init__(
        self,
        redis: Redis,
        supplier: str,
        consumer_name: str,
        *,
        keys: KeyBuilder | None = None,
        batch_size: int = 500,
    ) -> None:
        self._redis = redis
        self.keys = keys or KeyBuilder.for_client(redis)
        self.supplier = supplier
        self.stream = self.keys.stream_key(supplier)
        self.dead_stream = self.keys.dead_letter_stream_key(supplier)
        self.group = self.keys.consumer_group()
        self.consumer = consumer_name
        self.batch_size = batch_size
        self._xackdel: bool | None = None
        self._read_pending = redis.register_script(scripts.READ_PENDING)
        #: times a missing group was re-created after a NOGROUP reply
        self.group_recreations = 0

    # --- group ------------------------------------------------------------------------------
    async def ensure_group(self) -> None:
        """Create the group (from id 0: a new group sees every entry already in the stream)."""
        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    async def _with_group(self, call: Any) -> Any:
        try:
            return await call()
        except ResponseError as err:
            # Real servers say NOGROUP; fakeredis says the key must exist.
            text = str(err)
            if not any(m in text for m in ("NOGROUP", "no such key", "requires the key to exist")):
                raise
            await self.ensure_group()
            self.group_recreations += 1
            return await call()

    # --- reads ------------------------------------------------------------------------------
    async def read_new(self, block_ms: int | None) -> list[StreamEntry]:
        """Entries never delivered to the group (``>``), waiting up to ``block_ms`` (None: do
        not block; Redis checks blocking timeouts only ``hz`` times a second, so even
        ``BLOCK 1`` can take 100 ms on an empty stream)."""

        async def call() -> Any:
            return await self._redis.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: ">"},
                count=self.batch_size,
                block=None if block_ms is None else max(1, block_ms),
            )

        reply = await self._with_group(call)
        entries = _fresh_entries(reply[0][1] if reply else None)
        if entries:
            metrics.RELAYS_CONSUMED.labels(supplier=self.supplier).inc(len(entries))
        return entries

    async def read_own_pending(self, after: bytes = b"0-0") -> list[StreamEntry]:
        """One page of this consumer's own pending entries after ``after`` (e.g. after a
        restart under the same consumer name). Not a delivery: the counts stay as they are."""
        entries, _ = await self._pending("own", after, 0)
        return entries

    async def reclaim(
        self, min_idle_ms: int, start: bytes = b"0-0"
    ) -> tuple[list[StreamEntry], bytes]:
        """One XAUTOCLAIM page of entries idle at least ``min_idle_ms`` (any consumer's), taken
        with JUSTID so that the miner's own reclaims do not add deliveries.

        Returns the entries (with delivery counts) and the cursor to continue from; ``0-0``
        means the pending list was scanned to its end. Entries deleted from the stream while
        pending come back with ``fields=None`` where the server still lists them (Redis 7
        drops them from the pending list itself).
        """
        entries, cursor = await self._pending("claim", start, max(0, min_idle_ms))
        if entries:
            metrics.RELAYS_RECLAIMED.labels(supplier=self.supplier).inc(len(entries))
        return entries, cursor

    async def _pending(
        self, mode: str, start: bytes, min_idle_ms: int
    ) -> tuple[list[StreamEntry], bytes]:
        async def call() -> Any:
            args: list[Any] = [self.group, self.consumer, mode, start, self.batch_size, min_idle_ms]
            return await self._read_pending(keys=[self.stream], args=args)

        reply = await self._with_group(call)
        cursor = reply[0] if isinstance(reply[0], bytes) else str(reply[0]).encode()
        entries = []
        for i in range(1, len(reply), 3):
            flat = reply[i + 2]
            fields = dict(zip(flat[::2], flat[1::2], strict=True)) if flat else None
            entries.append(StreamEntry(reply[i], fields, max(1, int(reply[i + 1])), True))
        return entries, cursor

    # --- ack, trim, introspection -------------------------------------------------------------
    async def supports_xackdel(self) -> bool:
        """Probe once whether the server has XACKDEL (Redis 8.2+)."""
        if self._xackdel is None:
            try:
                await self._redis.execute_command(  # type: ignore[no-untyped-call]
                    "XACKDEL", self.stream, self.group, "DELREF", "IDS", 1, "0-1"
                )
                self._xackdel = True
            except ResponseError as err:
                text = str(err).lower()
                self._xackdel = not ("unknown command" in text or "unknown subcommand" in text)
            except RedisError as err:
                # A cluster client routes by the server's command table, where an unknown
                # command has no keys: it refuses before sending anything.
                if "doesn't exist in redis commands" not in str(err).lower():
                    raise
                self._xackdel = False
        return self._xackdel

    async def trim(self, max_age_ms: int) -> int:
        """XTRIM MINID: drop entries older than ``max_age_ms`` (their sessions have expired)."""
        min_id = f"{max(0, int(time.time() * 1000) - max_age_ms)}-0"
        try:
            return int(await self._redis.xtrim(self.stream, minid=min_id, approximate=False))
        except ResponseError as err:
            if "no such key" in str(err):
                return 0
            raise

    async def pending_count(self) -> int:
        try:
            info = await self._redis.xpending(self.stream, self.group)
        except ResponseError as err:
            if "NOGROUP" in str(err) or "no such key" in str(err):
                return 0
            raise
        count = int(info["pending"])
        metrics.STREAM_PENDING.labels(supplier=self.supplier).set(count)
        return count

    async def lag(self) -> int | None:
        """Entries not yet delivered to the group (XINFO GROUPS ``lag``; None if unknown)."""
        try:
            groups = await self._redis.xinfo_groups(self.stream)
        except ResponseError:
            return None
        for g in groups:
            name = g.get("name")
            if name in (self.group, self.group.encode()):
                lag = g.get("lag")
                if lag is not None:
                    metrics.STREAM_LAG.labels(supplier=self.supplier).set(int(lag))
                    return int(lag)
        return None


def _id_key(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)
