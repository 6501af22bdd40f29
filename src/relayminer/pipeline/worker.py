"""RelayWorker: turns one supplier's relay stream into SMST leaves and session counters, once.

Per batch of stream entries, in this order:

1. sorting (:mod:`relayminer.pipeline.sorting`): entries over the retry cap and malformed ones
   (no ``data``, bad protobuf, poison session id, a hash that is not sha256 of the bytes, wrong
   supplier ...) are set aside for the dead-letter stream, each with its reason;
2. ``smst.layout: go`` only, the pre-check: relays of sessions that are terminal, or whose tree
   is sealed for the claim, are late (acked, not counted); relays that would overflow a
   session's compute units are dead-lettered. The journal's accounting step makes the same
   checks itself in its first pass (before any write), and a refusal for overflow there
   dead-letters the relays that do not fit and reruns the step;
3. ``smst.layout: go`` only: hash repair (sha256 of the bytes when the publisher sent no hash),
   then every relay goes into its session's SMST and each session's tree is committed once (one
   atomic compare-and-set per session: a crash at any instant leaves ``live_root`` naming a
   complete tree);
4. the accounting step, ``SessionCoordinator.account_batch`` (one atomic script): each relay is
   counted only if its hash is new to the session's gate -- in the journal layout (default)
   the ``HSETNX`` of the relay as a leaf of the session's leaf journal (a sealed journal counts
   nothing), in the Go layout the dedup set's ``SADD``; sessions are created on first sight;
   dead letters are written; every entry of the batch is acked and deleted.

Failures (``docs/failure-behaviour.md``): infrastructure errors (OOM, LOADING, READONLY, BUSY,
failovers, timeouts, lost connections) are retried in place with capped backoff
(:mod:`relayminer.pipeline.retry`); any other error is confined to the session whose work
failed: its entries stay pending with a failure recorded against each, the rest of the batch is
accounted, and the loop goes on. Lost Redis state is detected and reported
(:mod:`relayminer.pipeline.epoch`).

The worker owns the loop, the retries in place and the hooks; steps 1-4 of a batch are
:class:`~relayminer.pipeline.batch.BatchAccountant`'s, and the upkeep between batches (reclaim,
trim, gauges, epoch checks) is :class:`~relayminer.pipeline.maintenance.StreamMaintenance`'s.

Why this is exactly once (``docs/exactly-once.md``): in the journal layout the leaf is written
in the same atomic step that counts and acks it, and only its first write counts; the worker
holds no tree, so there is nothing to go stale. In the Go layout the SMST insert is idempotent
(same key, value and weight), and the dedup set decides counting in the same atomic step as the
ack. Either way a crash before step 4 leaves the entries pending, to be reclaimed and replayed;
the replay counts nothing twice, and two replicas racing on the same entries count each hash
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from redis.asyncio import Redis

from relayminer import metrics
from relayminer.errors import LeaseLostError
from relayminer.keys import KeyBuilder, Namespace
from relayminer.pipeline.batch import BatchAccountant, StagedBatch, TraceHook
from relayminer.pipeline.batch_result import BatchResult, record_batch
from relayminer.pipeline.consumer import StreamConsumer, StreamEntry
from relayminer.pipeline.epoch import StateEpoch
from relayminer.pipeline.maintenance import StreamMaintenance
from relayminer.pipeline.replication import wait_for_replicas
from relayminer.pipeline.retry import Backoff, is_infrastructure_error, retry_infrastructure
from relayminer.pipeline.sorting import BatchSorter
from relayminer.pipeline.wakeups import StreamWakeups
from relayminer.runtime.aio import wait_or_stop
from relayminer.runtime.leases import Fence
from relayminer.runtime.priority import LifecyclePriority
from relayminer.sessions.accounting import worker_ttl_refresh_s
from relayminer.sessions.coordinator import SessionCoordinator
from relayminer.sessions.model import SessionSnapshot, require_id
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig
from relayminer.smst.layout import DEFAULT_LAYOUT, SMSTLayout
from relayminer.smst.redis_store import RedisSMSTStore

__all__ = ["MAX_BATCH_SIZE", "BatchResult", "RelayWorker", "WorkerConfig", "default_consumer_name"]

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BATCH_SIZE = 5000
#: a batch whose sessions got fewer relays than this each, on average, is *thin*: the next reads
#: take up to :data:`MAX_BATCH_SIZE` entries, so the fixed work of each session in a step (its
#: keys, gate and counters) is shared by more relays (``bench/bench_worker.py``, 1,000
#: concurrent sessions); the configured ``batch_size`` again once batches are not thin
THIN_RELAYS_PER_SESSION = 4
#: longest wait on the shared stream watcher before an idle worker reads on its own anyway (it
#: only bounds a missed wake-up; every idle worker's read costs a round trip: at 1,000 suppliers,
#: 5 s cost a tenth of a core, docs/lifecycle.md "Capacity of one replica")
WAKEUP_FALLBACK_SECONDS = 15.0


@dataclass
class WorkerConfig:
    batch_size: int = 500
    block_ms: int = 1000
    claim_idle_ms: int = 30000
    max_retries: int = 3
    consumer_name: str | None = None
    namespace: Namespace | None = None
    #: TTL of session snapshots and SMST keys (sliding).
    session_ttl_seconds: int = 7200
    #: TTL of the dedup sets (sliding). It must outlast the session's claim window: the set is
    #: the exactly-once gate. Default: the session TTL.
    dedup_ttl_seconds: int | None = None
    #: Entries older than this are trimmed from the stream (their sessions have expired).
    trim_max_age_ms: int | None = None
    trim_interval_s: float = 600.0
    #: how often the stream lag and pending gauges are refreshed (and the epoch checked): three
    #: round trips per supplier, so 15 s (a usual scrape interval) rather than less at 1,000
    #: suppliers (docs/lifecycle.md "Capacity of one replica")
    gauges_interval_s: float = 15.0
    fence: Fence | None = None
    #: where session trees live: ``journal`` (the accounting step writes each relay as a leaf
    #: and the worker holds no trees) or ``go`` (the worker commits Go-layout trees and the
    #: dedup set gates counting); see :mod:`relayminer.smst.layout`
    smst_layout: SMSTLayout = DEFAULT_LAYOUT
    #: after each accounting step, ``WAIT`` until this many replicas hold it (0: off); short
    #: replies are logged and counted, never retried (:mod:`relayminer.pipeline.replication`)
    wait_replicas: int = 0
    #: how long that ``WAIT`` may block
    wait_timeout_ms: int = 1000
    #: the replica's lifecycle priority: the worker waits before each batch while lifecycle
    #: passes run (:mod:`relayminer.runtime.priority`); None: never waits
    priority: LifecyclePriority | None = None
    #: the replica's shared stream watcher: the worker reads without blocking and waits there
    #: (:mod:`relayminer.pipeline.wakeups`); None: a blocking ``XREADGROUP`` of its own
    wakeups: StreamWakeups | None = None

    def __post_init__(self) -> None:
        self.smst_layout = SMSTLayout(self.smst_layout)
        for name in (
            "batch_size",
            "block_ms",
            "claim_idle_ms",
            "max_retries",
            "session_ttl_seconds",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"WorkerConfig.{name} must be an int")
            low = 0 if name in ("claim_idle_ms", "max_retries") else 1
            if value < low:
                raise ValueError(f"WorkerConfig.{name} must be >= {low}, got {value}")
        if self.batch_size > MAX_BATCH_SIZE:
            raise ValueError(f"WorkerConfig.batch_size must be <= {MAX_BATCH_SIZE}")
        if self.dedup_ttl_seconds is not None and self.dedup_ttl_seconds < 1:
            raise ValueError("WorkerConfig.dedup_ttl_seconds must be >= 1")
        for name, low in (("wait_replicas", 0), ("wait_timeout_ms", 1)):  # WAIT 0: forever
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"WorkerConfig.{name} must be an int >= {low}, got {value!r}")

    @property
    def effective_dedup_ttl(self) -> int:
        return self.dedup_ttl_seconds or self.session_ttl_seconds

    @property
    def effective_trim_max_age_ms(self) -> int:
        return self.trim_max_age_ms or self.session_ttl_seconds * 1000


def default_consumer_name() -> str:
    return f"miner-{socket.gethostname()}-{os.getpid()}"


SessionCreatedHook = Callable[[SessionSnapshot], Awaitable[None] | None]
BatchHook = Callable[["BatchResult"], Awaitable[None] | None]


class RelayWorker:
    """Consumes ``ha:relays:{supplier}`` and accounts every relay exactly once."""

    def __init__(
        self,
        redis: Redis,
        supplier_address: str,
        config: WorkerConfig | None = None,
        *,
        on_session_created: SessionCreatedHook | None = None,
        on_batch: BatchHook | None = None,
        trace: TraceHook | None = None,
    ) -> None:
        self.supplier = require_id("supplier_address", supplier_address)
        self.config = config if config is not None else WorkerConfig()
        self.keys = KeyBuilder.for_client(redis, self.config.namespace)
        self.consumer_name = self.config.consumer_name or default_consumer_name()
        self._redis = redis
        self.consumer = StreamConsumer(
            redis,
            self.supplier,
            self.consumer_name,
            keys=self.keys,
            batch_size=self.config.batch_size,
        )
        ttl = self.config.session_ttl_seconds
        self.store = RedisSessionStore(
            redis,
            SessionStoreConfig(self.supplier, self.keys.miner_sessions_prefix(), ttl),
            fence=self.config.fence,
        ).with_keys(self.keys)
        # Session TTLs are refreshed at most once per interval per session (they still live at
        # least 90% of their TTL after their last relay): sessions/accounting.py.
        self.store.accounting.ttl_refresh_s = worker_ttl_refresh_s(
            min(ttl, self.config.effective_dedup_ttl)
        )
        self.coordinator = SessionCoordinator(self.store, self.supplier)
        if on_session_created is not None:
            self.coordinator.set_on_session_created_callback(on_session_created)
        self.journal = self.config.smst_layout is SMSTLayout.JOURNAL
        #: the Go layout's trees (None in the journal layout: the accounting step writes leaves)
        self.trees = (
            None
            if self.journal
            else RedisSMSTStore(
                redis, self.supplier, keys=self.keys, ttl_seconds=ttl, fence=self.config.fence
            )
        )
        self.sorter = BatchSorter(
            redis,
            self.supplier,
            self.keys,
            self.store,
            max_retries=self.config.max_retries,
            failure_ttl_seconds=ttl,
            layout=self.config.smst_layout,
        )
        self.epoch = StateEpoch(redis, self.keys, self.supplier)
        self._on_batch = on_batch
        self._trace = trace
        self._ack_mode: str | None = None
        #: set while ``run`` may retry in place; ``drain`` and ``process`` fail fast instead
        self._stop = asyncio.Event()
        self._stop.set()
        self.total = BatchResult()
        self.batches = BatchAccountant(
            supplier=self.supplier,
            consumer=self.consumer,
            sorter=self.sorter,
            coordinator=self.coordinator,
            trees=self.trees,
            dedup_ttl_seconds=self.config.effective_dedup_ttl,
            ack_mode=self._ack_mode_probe,
            in_place=self._in_place,
            trace=trace,
        )
        self.maintenance = StreamMaintenance(
            supplier=self.supplier,
            consumer=self.consumer,
            epoch=self.epoch,
            config=self.config,
            reclaim=self._reclaim,
            forget_trees=self._forget_trees,
        )

    # --- loop ---------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set; the batch in hand is finished first.

        Nothing but the stop signal (or a lost lease) ends the loop: infrastructure errors are
        retried in place with capped backoff, and any other error is logged with its cause,
        leaves the entries involved pending, and the loop goes on."""
        stop = stop or asyncio.Event()
        self._stop = stop
        backoff = Backoff(first=0.05, cap=5.0)
        started = False
        while not stop.is_set():
            try:
                if not started:
                    await self._start()
                    started = True
                await self._step(stop)
                backoff.reset()
            except (asyncio.CancelledError, LeaseLostError):
                raise
            except Exception as err:
                delay = backoff.next()
                if is_infrastructure_error(err):
                    metrics.RECONNECTS.labels(component="relay_worker").inc()
                    log.warning(
                        "redis unavailable, retrying",
                        extra={"supplier": self.supplier, "backoff_s": delay, "error": repr(err)},
                    )
                    self.maintenance.epoch_due = True  # a restart may have emptied it
                else:
                    metrics.BATCH_FAILURES.labels(supplier=self.supplier).inc()
                    log.error(
                        "relay worker step failed; its entries stay pending",
                        exc_info=err,
                        extra={"supplier": self.supplier, "error": repr(err)},
                    )
                self._forget_trees()
                await wait_or_stop(stop, delay)

    async def _start(self) -> None:
        await self.consumer.ensure_group()
        await self.epoch.start()
        self.maintenance.watch_group()
        await self._ack_mode_probe()
        # Our own pending entries first (a restart under the same name), then any consumer's
        # entries idle for longer than the claim timeout.
        await self._drain_own_pending()
        await self._reclaim(self.config.claim_idle_ms)
        self.maintenance.reclaimed()

    def _forget_trees(self) -> None:
        if self.trees is not None:
            self.trees.forget_all()

    async def _yield_to_lifecycle(self) -> None:
        if self.config.priority is not None:
            await self.config.priority.mining_turn()

    async def _step(self, stop: asyncio.Event) -> None:
        await self.maintenance.run()
        await self._yield_to_lifecycle()
        entries = await self._read_new(stop)
        if not entries:
            return
        # A pipeline of depth one: batch N's accounting step runs while batch N+1's trees are
        # built and committed, and the batch after that is read meanwhile. Each accounting step
        # still follows its own batch's tree commits. Infrastructure errors are retried in place
        # (the entries in hand stay in hand); anything else leaves the entries involved pending
        # under our name, to be reclaimed: replays count nothing twice.
        finishing: asyncio.Future[BatchResult] | None = None
        try:
            while entries:
                await self._yield_to_lifecycle()
                # A short batch means the stream was drained: reading ahead would be an empty
                # round trip (per relay, with many quiet suppliers).
                more = len(entries) >= self.config.batch_size and not stop.is_set()
                ahead = asyncio.ensure_future(self._read_ahead() if more else _nothing())
                try:
                    staged = await self._in_place(
                        "commit trees", functools.partial(self._commit_trees, entries)
                    )
                    if finishing is not None:
                        await finishing
                    finishing = asyncio.ensure_future(self._finish(staged))
                except BaseException:
                    with contextlib.suppress(Exception):
                        await ahead
                    raise
                entries = await ahead
                if entries and (stop.is_set() or self.maintenance.reclaim_due()):
                    await finishing
                    finishing = None
                    await self.process(entries)  # finish what was taken, then yield
                    return
        finally:
            if finishing is not None:
                await finishing

    async def _read_new(self, stop: asyncio.Event) -> list[StreamEntry]:
        """New entries, waiting up to ``block_ms`` for some: on the replica's shared watcher
        when there is one (:mod:`relayminer.pipeline.wakeups`: no pooled connection is held
        while waiting), else in a blocking ``XREADGROUP``."""
        wakeups = self.config.wakeups
        if wakeups is not None:
            wakeups.prepare(self.consumer.stream)
            entries = await self.consumer.read_new(None)
            if entries:
                wakeups.seen(self.consumer.stream, entries[-1].entry_id)
            else:  # the watcher wakes us; the timeout only bounds a missed wake-up
                await wakeups.wait(self.consumer.stream, WAKEUP_FALLBACK_SECONDS)
            return entries
        started = time.monotonic()
        entries = await self.consumer.read_new(self.config.block_ms)
        if not entries and (time.monotonic() - started) * 1000 < self.config.block_ms / 2:
            # The server returned at once instead of blocking (fakeredis does with COUNT):
            # wait for the block time or the stop signal instead of spinning.
            await wait_or_stop(stop, self.config.block_ms / 1000)
        return entries

    async def _read_ahead(self) -> list[StreamEntry]:
        return await self._in_place("read", lambda: self.consumer.read_new(None))

    async def _in_place(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        """``op``, with infrastructure errors retried in place while ``run`` is running."""
        return await retry_infrastructure(op, self._stop, what=what, supplier=self.supplier)

    async def drain(self) -> int:
        """Process everything in the stream now and everything pending (reclaimed whatever its
        idle time); return how many entries were handled."""
        await self.consumer.ensure_group()
        await self.epoch.start()
        await self._ack_mode_probe()
        before = self.total.handled
        await self._drain_own_pending()
        await self._reclaim(0)
        while True:
            entries = await self.consumer.read_new(None)
            if not entries:
                break
            await self.process(entries)
        return self.total.handled - before

    async def _drain_own_pending(self) -> None:
        after = b"0-0"
        while True:
            entries = await self.consumer.read_own_pending(after)
            if not entries:
                return
            await self.process(entries)
            after = entries[-1].entry_id

    async def _reclaim(self, min_idle_ms: int) -> None:
        cursor = b"0-0"
        while True:
            entries, cursor = await self.consumer.reclaim(min_idle_ms, cursor)
            if entries:
                await self.process(entries)
            if cursor in (b"0-0", "0-0"):
                return

    async def _ack_mode_probe(self) -> str:
        if self._ack_mode is None:
            self._ack_mode = "xackdel" if await self.consumer.supports_xackdel() else "xack"
        return self._ack_mode

    # --- one batch ----------------------------------------------------------------------------
    async def process(self, entries: Sequence[StreamEntry]) -> BatchResult:
        """Account one batch of stream entries (see the module docstring for the order)."""
        staged = await self._in_place("commit trees", lambda: self._commit_trees(entries))
        return await self._finish(staged)

    async def _commit_trees(self, entries: Sequence[StreamEntry]) -> StagedBatch:
        """Steps 1-3: sort the entries out and commit every session's tree."""
        staged = await self.batches.stage(entries)
        sessions = len(staged.batch.relays)
        thin = len(entries) < THIN_RELAYS_PER_SESSION * sessions
        self.consumer.batch_size = MAX_BATCH_SIZE if thin else self.config.batch_size
        return staged

    async def _finish(self, staged: StagedBatch) -> BatchResult:
        """Step 4: the atomic accounting step (count once, create, dead-letter, ack), then the
        metrics and hooks."""
        entries, batch, result = staged.entries, staged.batch, staged.result
        if not entries:
            return result
        attempts = 0

        async def account() -> BatchResult:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                await self.batches.recommit(staged)
            return await self._account(staged)

        await self._in_place("account", account)
        if self.config.wait_replicas:
            await wait_for_replicas(
                self._redis, self.supplier, self.config.wait_replicas, self.config.wait_timeout_ms
            )
        if self._trace:
            self._trace("accounted", len(entries))
        result.handled = len(entries) - len(staged.failed)
        result.dead = len(batch.dead)
        record_batch(self.supplier, self.total, result, batch.relays, batch.dead, staged.started)
        if self._on_batch is not None:
            outcome = self._on_batch(result)
            if outcome is not None:
                await outcome
        return result

    async def _account(self, staged: StagedBatch) -> BatchResult:
        """The accounting step of one staged batch (a seam the crash tests replace)."""
        return await self.batches.account(staged)


async def _nothing() -> list[StreamEntry]:
    return []
