"""The relay worker's periodic upkeep between batches: reclaim idle pending entries, trim
expired ones, refresh the lag and pending gauges, and check that Redis still holds the state
the worker started with (:mod:`relayminer.pipeline.epoch`).

It lives apart from the worker's loop because none of it touches a batch in hand: it only
decides, from clocks and the consumer group's recreation count, what is due before the next
read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from relayminer.pipeline.consumer import StreamConsumer
from relayminer.pipeline.epoch import StateEpoch

__all__ = ["StreamMaintenance"]

# The worker's logger: these log lines are the worker's, as they were before the split.
log = logging.getLogger("relayminer.pipeline.worker")


class MaintenanceConfig(Protocol):
    """The part of ``WorkerConfig`` the upkeep reads."""

    @property
    def claim_idle_ms(self) -> int: ...
    @property
    def gauges_interval_s(self) -> float: ...
    @property
    def trim_interval_s(self) -> float: ...
    @property
    def effective_trim_max_age_ms(self) -> int: ...


class StreamMaintenance:
    """Decides and runs what is due between two batches of one worker."""

    def __init__(
        self,
        *,
        supplier: str,
        consumer: StreamConsumer,
        epoch: StateEpoch,
        config: MaintenanceConfig,
        reclaim: Callable[[int], Awaitable[None]],
        forget_trees: Callable[[], None],
    ) -> None:
        self.supplier = supplier
        self.consumer = consumer
        self.epoch = epoch
        self.config = config
        self._reclaim = reclaim
        self._forget_trees = forget_trees
        self.last_reclaim = 0.0
        self.last_trim = 0.0
        self.last_gauges = 0.0
        self.recreations_seen = 0
        #: set when Redis may have lost its state (a restart): the epoch is checked first
        self.epoch_due = False

    def watch_group(self) -> None:
        """From now on, a recreation of the consumer group triggers an epoch check."""
        self.recreations_seen = self.consumer.group_recreations

    def reclaimed(self) -> None:
        """A full reclaim was just done: the next is due after the claim timeout."""
        self.last_reclaim = time.monotonic()

    def reclaim_due(self) -> bool:
        return (time.monotonic() - self.last_reclaim) * 1000 >= self.config.claim_idle_ms

    async def check_epoch(self) -> None:
        self.epoch_due = False
        self.recreations_seen = self.consumer.group_recreations
        if await self.epoch.check():
            self._forget_trees()

    async def run(self) -> None:
        """Reclaim idle pending entries and trim expired ones when they are due; check that
        Redis still holds the state this worker started with."""
        now = time.monotonic()
        if self.epoch_due or self.consumer.group_recreations != self.recreations_seen:
            await self.check_epoch()
        if self.reclaim_due():
            self.last_reclaim = now
            await self._reclaim(self.config.claim_idle_ms)
        if now - self.last_gauges >= self.config.gauges_interval_s:
            self.last_gauges = now
            await self.check_epoch()
            await self.consumer.lag()  # sets ha_transport_redis_stream_lag
            await self.consumer.pending_count()  # sets ha_transport_redis_pending_messages
        if now - self.last_trim >= self.config.trim_interval_s:
            self.last_trim = now
            trimmed = await self.consumer.trim(self.config.effective_trim_max_age_ms)
            if trimmed:
                log.info(
                    "trimmed expired stream entries",
                    extra={"supplier": self.supplier, "count": trimmed},
                )
