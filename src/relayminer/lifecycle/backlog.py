"""Relays still in the stream: a claim waits (briefly) for the relays it is owed.

A claim seals its session: a relay mined after the seal is refused as late, and never paid. The
relayers publish a session's relays until its grace period ends; under a backlog (a replica
catching up after a restart, or relay mining paused for lifecycle passes) some of them can still
be unread in ``ha:relays:<supplier>`` when the claim window opens.

:class:`StreamBacklog` answers, from Redis alone, whether every entry published before a session
period's grace period was seen over has been consumed:

- :meth:`StreamBacklog.mark`: at the first pass after the grace period of the sessions ending at
  ``E``, the stream's newest entry id is remembered as that period's *mark* (every relay of
  those sessions was published before it, up to the relayers' own lag);
- :meth:`StreamBacklog.caught_up`: the consumer group delivered every entry up to the mark
  (``last-delivered-id``) and none of those is still pending (the oldest pending id is newer).

The claim phase defers a group that is not caught up while two more passes could still claim it
(as for counters behind their tree), then seals it whatever the stream holds: a late relay costs
its reward, a missed claim window costs them all (``docs/lifecycle.md``, "Claims and the stream
backlog"). A replica that restarted after the grace period marks the period at its first pass,
later than needed: it waits for more than the period's relays, within the same bound.

>>> stream_id(b"1700000000000-5") > stream_id(b"1700000000000-4")
True
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from relayminer.keys import KeyBuilder

__all__ = ["StreamBacklog", "stream_id"]

log = logging.getLogger(__name__)


def stream_id(raw: bytes | str | None) -> tuple[int, int]:
    """A stream entry id as a comparable ``(milliseconds, sequence)`` (``0-0`` for none)."""
    if raw is None:
        return (0, 0)
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    ms, _, seq = text.partition("-")
    return (int(ms or 0), int(seq or 0))


def _field(info: Any, name: str) -> Any:
    """A field of an XINFO reply (redis-py decodes the names to ``str`` keys)."""
    if isinstance(info, dict):
        return info.get(name, info.get(name.encode()))
    return None


class StreamBacklog:
    """The relay stream of one supplier, as seen by the claims of its sessions."""

    def __init__(self, redis: Redis, supplier: str, keys: KeyBuilder) -> None:
        self._redis = redis
        self.stream = keys.stream_key(supplier)
        self.group = keys.consumer_group()
        #: session end height -> the stream's newest entry id once its grace period was over
        self._marks: dict[int, tuple[int, int]] = {}

    async def _newest(self) -> tuple[int, int]:
        newest = await self._redis.xrevrange(self.stream, count=1)
        return stream_id(newest[0][0]) if newest else (0, 0)

    async def mark(self, end_height: int) -> None:
        """Remember the stream's newest entry as the mark of the sessions ending at
        ``end_height`` (once; marks of periods long claimed are dropped)."""
        if end_height in self._marks:
            return
        try:
            self._marks[end_height] = await self._newest()
        except RedisError as err:
            log.info("stream mark not read", extra={"stream": self.stream, "error": str(err)})
            return
        for old in [e for e in self._marks if e < end_height - 64]:
            del self._marks[old]

    async def caught_up(self, end_height: int) -> bool:
        """Whether every entry up to the mark of ``end_height`` was consumed (True when the
        stream or its group cannot be read: the claim must not wait on a broken read)."""
        try:
            if end_height not in self._marks:
                await self.mark(end_height)
            mark = self._marks.get(end_height)
            if mark is None or mark == (0, 0):
                return True
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xinfo_groups(self.stream)
                pipe.xpending(self.stream, self.group)
                groups, pending = await pipe.execute()
        except RedisError as err:
            log.info("stream backlog not read", extra={"stream": self.stream, "error": str(err)})
            return True
        group = next((g for g in groups if _name(g) == self.group), None)
        if group is None:
            return True  # no consumer group: nothing mines this stream yet
        if stream_id(_field(group, "last-delivered-id")) < mark:
            return False
        if int(_field(pending, "pending") or 0) == 0:
            return True
        return stream_id(_field(pending, "min")) > mark


def _name(group: Any) -> str:
    name = _field(group, "name")
    return name.decode() if isinstance(name, bytes) else str(name)
