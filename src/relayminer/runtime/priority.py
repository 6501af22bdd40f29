"""Lifecycle priority: relay mining yields to claim and proof work (``docs/lifecycle.md``).

One replica runs every owned supplier's relay worker and lifecycle on one event loop. Under a
backlog the workers always have CPU work ready, so a lifecycle pass that awaits Redis or the
chain a few dozen times would wait behind a worker batch at every await: the pass that should
broadcast a claim at the first block of its window runs blocks later, and a window can close
under it (the Go miner's mainnet PROOF_MISSING incident, and the soak of ``docs/lifecycle.md``).

:class:`LifecyclePriority` is the replica's one arbiter:

- every lifecycle pass runs inside :meth:`LifecyclePriority.lifecycle_pass`, at most
  ``max_concurrent_passes`` at once: a replica owning 1,000 suppliers runs its block's passes
  in turns rather than all at once, so no pass waits behind a thousand others for a pooled
  connection and the lease renewals still get theirs. An *urgent* pass (its supplier has claims
  on chain, so proofs may be owed: a missed proof is a slash, a missed claim a lost reward)
  takes the next free slot before the passes that queued earlier;
- every relay worker calls :meth:`LifecyclePriority.mining_turn` before each batch: while any
  pass is running it waits until the passes are done, for at most ``max_pause_seconds`` (so a
  pass stuck on a slow chain call cannot stop mining; a worker that waited that long runs one
  batch and asks again);
- trees built ahead of their claim (:meth:`LifecyclePriority.building_ahead`) are built by
  ``ahead_turns`` suppliers at a time (one when trees are built in the event loop; with tree
  build processes, enough to keep them busy): suppliers finish theirs in turn, instead of all
  of them finishing late (the claims that follow can use only finished trees).

Nothing is lost while a worker waits: its entries stay in the stream, unread. A worker batch is
bounded (``worker.batch_size``), so a pass starts at most one batch after its block.

>>> import asyncio
>>> async def demo() -> list[str]:
...     priority, order = LifecyclePriority(max_pause_seconds=5), []
...     async def worker() -> None:
...         await priority.mining_turn()
...         order.append("batch")
...     async with priority.lifecycle_pass():
...         task = asyncio.create_task(worker())
...         await asyncio.sleep(0)
...         order.append("claim")
...     await task
...     return order
>>> asyncio.run(demo())
['claim', 'batch']
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import AsyncIterator

from relayminer import metrics

__all__ = ["LifecyclePriority"]


class _RankedSlots:
    """At most ``n`` holders at once; waiters get a freed slot urgent ones first, then in the
    order they asked (``asyncio.Semaphore`` with two ranks)."""

    def __init__(self, n: int) -> None:
        self._free = n
        self._order = itertools.count()
        #: (rank, arrival, future): rank 0 urgent, 1 the others; a done future was cancelled
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []

    async def acquire(self, urgent: bool) -> None:
        while self._waiting and self._waiting[0][2].done():
            heapq.heappop(self._waiting)
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (0 if urgent else 1, next(self._order), slot))
        try:
            await slot
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():  # handed a slot, then cancelled
                self.release()
            raise

    def release(self) -> None:
        while self._waiting:
            _, _, slot = heapq.heappop(self._waiting)
            if not slot.done():
                slot.set_result(None)
                return
        self._free += 1


class LifecyclePriority:
    """Makes relay workers wait between batches while lifecycle passes run."""

    def __init__(
        self,
        max_pause_seconds: float = 2.0,
        max_concurrent_passes: int = 32,
        *,
        ahead_turns: int = 1,
    ) -> None:
        if max_pause_seconds < 0:
            raise ValueError(f"max_pause_seconds must be >= 0, got {max_pause_seconds}")
        if max_concurrent_passes < 1:
            raise ValueError(f"max_concurrent_passes must be >= 1, got {max_concurrent_passes}")
        self.max_pause_seconds = max_pause_seconds
        self._slots = _RankedSlots(max_concurrent_passes)
        if ahead_turns < 1:
            raise ValueError(f"ahead_turns must be >= 1, got {ahead_turns}")
        self.ahead_turns = ahead_turns
        self._ahead = asyncio.Semaphore(ahead_turns)
        self._passes = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def passes_running(self) -> int:
        return self._passes

    @contextlib.asynccontextmanager
    async def lifecycle_pass(self, *, urgent: bool = False) -> AsyncIterator[None]:
        """Hold mining back for the duration of one lifecycle pass (waiting for a slot
        included: at most ``max_concurrent_passes`` run at once, the others queue; an
        ``urgent`` pass is served before the others waiting)."""
        self._passes += 1
        self._idle.clear()
        try:
            await self._slots.acquire(urgent)
            try:
                yield
            finally:
                self._slots.release()
        finally:
            self._passes -= 1
            if self._passes == 0:
                self._idle.set()

    @contextlib.asynccontextmanager
    async def building_ahead(self, deadline: float) -> AsyncIterator[bool]:
        """A turn to build trees ahead of their claim: ``ahead_turns`` suppliers at a time, in
        the order asked. Yields whether the turn came before ``deadline`` (event loop time);
        only the wait is cut short, never the work of a turn (no Redis call is cancelled)."""
        try:
            async with asyncio.timeout_at(deadline):
                await self._ahead.acquire()
        except TimeoutError:
            yield False
            return
        try:
            yield True
        finally:
            self._ahead.release()

    async def mining_turn(self) -> float:
        """Wait until no lifecycle pass runs (at most ``max_pause_seconds``); the seconds
        waited."""
        if self._idle.is_set() or self.max_pause_seconds == 0:
            return 0.0
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.max_pause_seconds)
        waited = time.monotonic() - started
        metrics.MINING_PAUSE_SECONDS.inc(waited)
        return waited
