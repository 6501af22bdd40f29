"""Stream wake-ups: one blocked connection per replica, not one per supplier.

A relay worker with nothing to read would block in ``XREADGROUP ... BLOCK`` and hold a pooled
connection meanwhile. With 1,000 owned suppliers that is 1,000 connections parked on empty
streams: the pool runs dry and the lifecycle's commands wait for a connection (the "No
connection available" failure of a 100-supplier demo). Work per supplier must not scale the
connections held.

:class:`StreamWakeups` is the replica's one watcher. It runs a plain ``XREAD BLOCK`` (no
consumer group: it consumes nothing, acks nothing) over the streams of every supplier that has a
waiting worker, from the last id it saw of each, and wakes the workers of the streams that moved.
A worker then reads without blocking (:meth:`StreamWakeups.wait`):

1. ``prepare(stream)`` before its non-blocking ``XREADGROUP`` (clears its flag);
2. on an empty read, ``wait(stream, timeout)``: returns when an entry newer than what the
   watcher last saw arrived, or after ``timeout`` (a bounded fallback: nothing waits forever on
   a missed wake-up).

An entry added after step 1 either was seen by the watcher before the wait (the flag is set and
the wait returns at once) or is newer than the watcher's last id (its ``XREAD`` returns it):
no entry is left unread until the fallback.

A Redis Cluster cannot ``XREAD`` streams of several slots in one command; there the workers keep
their own blocking reads (``wakeups`` is None).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from relayminer.runtime.aio import wait_or_stop

__all__ = ["StreamWakeups"]

log = logging.getLogger(__name__)

#: One ``XREAD`` costs the watcher about 5 µs of CPU per stream it names (redis-py encodes every
#: argument; 5.2 ms for 1,000 streams on the development machine). On idle streams it returns
#: once per block time, so a fixed 100 ms block over 1,000 idle streams cost 2.3-2.6% of a core
#: (``bench/bench_wakeups.py``; 7% of the samples of a loaded 1,000-supplier scale run). The
#: block time grows by ``watch_ms`` per this many streams watched (up to :data:`MAX_WATCH_MS`):
#: 0.5-0.7% of a core over 1,000 idle streams. Streams that move still wake their workers at
#: once; what waits longer is only a worker that starts waiting during a block: it is watched
#: from the next one (docs/lifecycle.md, "Priority and scale").
STREAMS_PER_WATCH_STEP = 100
#: the longest block of one ``XREAD`` (unless ``watch_ms`` itself is longer)
MAX_WATCH_MS = 1000


class StreamWakeups:
    """Wakes the relay workers whose stream received entries."""

    def __init__(self, redis: Redis, *, watch_ms: int = 100, retry_seconds: float = 1.0) -> None:
        self._redis = redis
        #: how long one XREAD blocks per :data:`STREAMS_PER_WATCH_STEP` streams it watches
        #: (:meth:`block_ms`): a worker that starts waiting meanwhile is watched from the next
        #: one (its own fallback timeout bounds the wait regardless)
        self.watch_ms = max(1, watch_ms)
        self.retry_seconds = retry_seconds
        self._flags: dict[str, asyncio.Event] = {}
        self._last_ids: dict[str, bytes] = {}
        self._waiting: dict[str, int] = {}
        self._changed = asyncio.Event()

    def prepare(self, stream: str) -> None:
        """Call before a non-blocking read of ``stream``: later entries will set the flag."""
        flag = self._flags.setdefault(stream, asyncio.Event())
        flag.clear()

    async def wait(self, stream: str, timeout: float) -> bool:  # noqa: ASYNC109 - a bounded fallback, by design
        """Wait until ``stream`` received entries since :meth:`prepare` (True), or ``timeout``
        seconds passed (False)."""
        flag = self._flags.setdefault(stream, asyncio.Event())
        if flag.is_set():
            return True
        self._waiting[stream] = self._waiting.get(stream, 0) + 1
        self._changed.set()  # wakes an idle watcher
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(flag.wait(), timeout)
        finally:
            self._waiting[stream] -= 1
            if self._waiting[stream] == 0:
                del self._waiting[stream]
        return flag.is_set()

    def seen(self, stream: str, entry_id: bytes) -> None:
        """A worker read up to ``entry_id``: the watcher need not wake it for those again."""
        last = self._last_ids.get(stream)
        if last is None or _id_key(entry_id) > _id_key(last):
            self._last_ids[stream] = entry_id

    def forget(self, stream: str) -> None:
        """A supplier no longer owned."""
        self._flags.pop(stream, None)
        self._last_ids.pop(stream, None)

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop``; Redis errors are logged and retried after ``retry_seconds``."""
        while not stop.is_set():
            # Waiting workers not woken yet (a woken one reads on its own until it waits again).
            streams = sorted(s for s in self._waiting if not self._flags[s].is_set())
            if not streams:
                self._changed.clear()
                await _first(stop.wait(), self._changed.wait())
                continue
            started = time.monotonic()
            block_ms = self.block_ms(len(streams))
            try:
                moved = await self._watch_once(streams, block_ms)
                if not moved and (time.monotonic() - started) * 1000 < block_ms / 2:
                    # The server answered at once instead of blocking (fakeredis does): wait
                    # the watch time rather than spin.
                    await wait_or_stop(stop, block_ms / 1000)
            except (RedisError, OSError) as err:
                log.warning("stream wake-ups: read failed, retrying", extra={"error": str(err)})
                self._wake_all()  # the workers fall back to reading on their own meanwhile
                await wait_or_stop(stop, self.retry_seconds)

    def block_ms(self, streams: int) -> int:
        """How long one ``XREAD`` over ``streams`` streams blocks (:data:`STREAMS_PER_WATCH_STEP`).

        >>> StreamWakeups(None, watch_ms=100).block_ms(1), StreamWakeups(None).block_ms(250)
        (100, 300)
        >>> StreamWakeups(None).block_ms(1000), StreamWakeups(None).block_ms(5000)
        (1000, 1000)
        """
        steps = max(1, -(-streams // STREAMS_PER_WATCH_STEP))
        return min(self.watch_ms * steps, max(self.watch_ms, MAX_WATCH_MS))

    async def _watch_once(self, streams: list[str], block_ms: int) -> bool:
        """One ``XREAD BLOCK`` over ``streams``; wakes the workers of the streams that moved."""
        unseen = [s for s in streams if s not in self._last_ids]
        if unseen:  # start from each stream's newest entry ("$" cannot be remembered)
            async with self._redis.pipeline(transaction=False) as pipe:
                for s in unseen:
                    pipe.xinfo_stream(s)
                infos = await pipe.execute(raise_on_error=False)
            for s, info in zip(unseen, infos, strict=True):
                last = info.get(b"last-generated-id") if isinstance(info, dict) else None
                self._last_ids[s] = last if isinstance(last, bytes) else b"0-0"
            self._wake(unseen)  # anything before that id is for the worker's own read
        reply: Any = await self._redis.xread(
            {s: self._last_ids[s] for s in streams}, count=1, block=block_ms
        )
        moved: list[str] = []
        for name, entries in reply or []:
            stream = name.decode() if isinstance(name, bytes) else str(name)
            if entries:
                self._last_ids[stream] = bytes(entries[-1][0])
                moved.append(stream)
        self._wake(moved)
        return bool(moved)

    def _wake(self, streams: list[str]) -> None:
        for s in streams:
            self._flags.setdefault(s, asyncio.Event()).set()

    def _wake_all(self) -> None:
        self._wake(list(self._waiting))


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Wait for the first of several coroutines; cancel the rest."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


def _id_key(entry_id: bytes) -> tuple[int, int]:
    """A stream entry id (``ms-seq``) as a sortable pair."""
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)
