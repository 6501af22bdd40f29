"""The miner process: leases, one pipeline per owned supplier, the chain, metrics.

``Miner.run`` is what ``relayminer run`` (and the demo) executes:

- it registers the replica and keeps supplier leases (:mod:`relayminer.runtime.leases`);
- for every supplier it owns it runs a :class:`SupplierPipeline`: a
  :class:`~relayminer.pipeline.worker.RelayWorker` (stream -> SMST + counters) and a
  :class:`~relayminer.lifecycle.manager.LifecycleManager` (claims and proofs), both fenced by the
  lease;
- the lifecycles share one :class:`~relayminer.chain.cache.SharedChainReads`: what every
  supplier reads from the chain (events, params, block hashes) is asked once per replica;
- idle workers wait on one shared :class:`~relayminer.pipeline.wakeups.StreamWakeups` watcher
  (one blocked ``XREAD`` per replica), so owning more suppliers holds no more connections;
- mining yields to the lifecycle: one :class:`~relayminer.runtime.priority.LifecyclePriority`
  makes every worker wait between batches while any lifecycle pass runs;
- a pipeline whose lease is lost is stopped before the lease can move; a task that crashes is
  restarted with backoff;
- it runs the chain's *driver* when the chain has one (:func:`relayminer.chain.factory.
  build_chain`; for the simulated chain: block production, one producer at a time);
- it refuses to start on a Redis whose ``maxmemory-policy`` may evict keys, unless
  ``redis.allow_eviction`` is set, and re-checks the policy every minute
  (:func:`check_eviction_policy`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from relayminer import metrics
from relayminer.chain.base import Chain
from relayminer.chain.cache import SharedChainReads
from relayminer.chain.factory import Driver
from relayminer.config import MinerConfig
from relayminer.errors import LeaseLostError, RelayMinerError
from relayminer.keys import KeyBuilder
from relayminer.lifecycle.manager import LifecycleManager, PassReport
from relayminer.pipeline.wakeups import StreamWakeups
from relayminer.pipeline.worker import BatchResult, RelayWorker, WorkerConfig
from relayminer.runtime.aio import wait_or_stop
from relayminer.runtime.gcpolicy import run_gc_freezer
from relayminer.runtime.leases import Fence, SupplierLeases
from relayminer.runtime.priority import LifecyclePriority
from relayminer.runtime.tree_builder import TreeBuilder

log = logging.getLogger(__name__)


#: how often a running miner re-reads Redis's ``maxmemory-policy``
EVICTION_CHECK_SECONDS = 60.0
#: connections of the lease round's own pool
LEASE_CONNECTIONS = 2


class EvictionPolicyError(RelayMinerError):
    """Redis may evict the miner's keys and ``redis.allow_eviction`` is not set."""


def default_instance_id() -> str:
    return f"miner-{socket.gethostname()}-{os.getpid()}"


async def check_eviction_policy(redis: Redis, *, allow_eviction: bool) -> str | None:
    """Read ``CONFIG GET maxmemory-policy``; return the policy (None when it cannot be read).

    An evicting policy (``allkeys-*``, ``volatile-*``) can drop a tree's nodes, its
    ``live_root`` or a dedup set: relays are lost or counted twice without any error. It raises
    :class:`EvictionPolicyError` unless ``allow_eviction`` (then a WARNING and the
    ``ha_miner_redis_eviction_policy_evicting`` gauge at 1). A server with ``CONFIG`` disabled
    or renamed is logged as unchecked. On a Redis Cluster every master is read, and the first
    evicting policy found (else the first one) is the answer.
    """
    try:
        reply = _first_evicting(await _policies(redis))
    except RedisError as err:
        log.warning(
            "could not check the Redis maxmemory-policy (CONFIG unavailable)",
            extra={"error": str(err)},
        )
        return None
    raw = next(iter(reply.values()), None) if reply else None
    if raw is None:
        log.warning("could not check the Redis maxmemory-policy (no value returned)")
        return None
    policy = raw.decode() if isinstance(raw, bytes) else str(raw)
    evicting = policy.startswith(("allkeys-", "volatile-"))
    metrics.REDIS_EVICTING.set(1 if evicting else 0)
    if evicting and not allow_eviction:
        raise EvictionPolicyError(
            f"Redis maxmemory-policy is {policy!r}: evicted keys lose relays; set it to "
            "'noeviction' or set redis.allow_eviction: true"
        )
    if evicting:
        log.warning(
            "Redis may evict the miner's keys (redis.allow_eviction is set)",
            extra={"maxmemory_policy": policy},
        )
    return policy


def lease_client(redis: Redis) -> Redis | None:
    """A small client of its own for the lease round, on the same server as ``redis``.

    Lease renewals must not queue for a pooled connection behind a thousand suppliers' relay
    and lifecycle commands: a renewal late by ``ttl - renew`` stops every pipeline. Only a
    plain (single server) blocking pool is cloned; otherwise (Sentinel, tests' clients) None:
    the leases share ``redis``.
    """
    pool = getattr(redis, "connection_pool", None)  # a cluster client has a pool per node
    if type(pool) is not BlockingConnectionPool:
        return None
    clone = BlockingConnectionPool(
        connection_class=pool.connection_class,
        max_connections=LEASE_CONNECTIONS,
        timeout=pool.timeout,
        **pool.connection_kwargs,
    )
    return Redis.from_pool(clone)


async def _policies(redis: Redis) -> list[dict[Any, Any]]:
    if isinstance(redis, RedisCluster):  # one reply per master: any of them may evict
        return [
            await redis.config_get("maxmemory-policy", target_nodes=node)
            for node in redis.get_primaries()
        ]
    return [await redis.config_get("maxmemory-policy")]


def _first_evicting(replies: list[dict[Any, Any]]) -> dict[Any, Any]:
    for reply in replies:
        raw = next(iter(reply.values()), None) if reply else None
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        if text.startswith(("allkeys-", "volatile-")):
            return reply
    return replies[0] if replies else {}


@dataclass
class MinerHooks:
    """Optional observers (the demo's progress display, tests)."""

    on_batch: Callable[[str, BatchResult], Awaitable[None] | None] | None = None
    on_pass: Callable[[str, PassReport], Awaitable[None] | None] | None = None


@dataclass
class SupplierPipeline:
    """The relay worker and the lifecycle of one owned supplier."""

    supplier: str
    worker: RelayWorker
    lifecycle: LifecycleManager
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self.tasks = [
            asyncio.create_task(
                self._supervise("worker", self.worker.run), name=f"w-{self.supplier}"
            ),
            asyncio.create_task(
                self._supervise("lifecycle", self.lifecycle.run), name=f"l-{self.supplier}"
            ),
        ]

    async def _supervise(self, name: str, run: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        backoff = 1.0
        while not self.stop_event.is_set():
            try:
                await run(self.stop_event)
                return
            except LeaseLostError as err:
                log.warning(
                    "fenced out: lease lost",
                    extra={"supplier": self.supplier, "task": name, "error": str(err)},
                )
                self.stop_event.set()  # the lease round will notice and clean up
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "pipeline task crashed, restarting",
                    extra={"supplier": self.supplier, "task": name},
                )
                if await wait_or_stop(self.stop_event, backoff):
                    return
                backoff = min(backoff * 2, 30.0)

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop both tasks: the batch or pass in hand may finish within ``grace_seconds``."""
        self.stop_event.set()
        if not self.tasks:
            return
        _done, pending = await asyncio.wait(self.tasks, timeout=grace_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


class Miner:
    """One miner replica."""

    def __init__(
        self,
        config: MinerConfig,
        redis: Redis,
        chain: Chain,
        *,
        driver: Driver | None = None,
        hooks: MinerHooks | None = None,
    ) -> None:
        self.config = config
        self.redis = redis
        self.chain = chain
        #: what every supplier's lifecycle reads from the chain, asked once per replica
        self.chain_reads = SharedChainReads(chain)
        self.driver = driver
        self.keys = KeyBuilder.for_client(redis, config.redis.namespace)
        self.instance_id = config.instance_id or default_instance_id()
        self.hooks = hooks or MinerHooks()
        self.pipelines: dict[str, SupplierPipeline] = {}
        #: every owned supplier's trees are built by it (off the loop with worker processes)
        self.tree_builder = TreeBuilder(config.lifecycle.tree_build_processes)
        #: one arbiter for every owned supplier: mining yields to any lifecycle pass
        self.priority = LifecyclePriority(
            config.lifecycle.max_mining_pause_seconds,
            config.lifecycle.max_concurrent_passes,
            # built in worker processes, a turn mostly waits: a few at once keep them busy
            ahead_turns=max(1, 2 * self.tree_builder.processes),
        )
        #: one blocked XREAD for every idle worker, instead of a parked connection each
        #: (not on a cluster: one XREAD cannot span slots; workers block on their own there)
        self.wakeups = None if isinstance(redis, RedisCluster) else StreamWakeups(redis)
        self._lease_redis = lease_client(redis)
        self.leases = SupplierLeases(
            self._lease_redis or redis,
            self.instance_id,
            config.suppliers,
            keys=self.keys,
            ttl_seconds=config.leases.ttl_seconds,
            renew_seconds=config.leases.renew_seconds,
            on_acquired=self._start_pipeline,
            on_lost=self._stop_pipeline,
        )

    def _pipeline(self, supplier: str, fence: Fence) -> SupplierPipeline:
        c = self.config
        hooks = self.hooks
        batch_hook = hooks.on_batch

        def on_batch(result: BatchResult) -> Awaitable[None] | None:
            # the sessions mined now are not built ahead yet (lifecycle/manager.py)
            lifecycle.relays_mined(result.sessions)
            return batch_hook(supplier, result) if batch_hook is not None else None

        on_pass = None
        if hooks.on_pass is not None:
            pass_hook = hooks.on_pass

            def on_pass(report: PassReport) -> Awaitable[None] | None:
                return pass_hook(supplier, report)

        lifecycle = LifecycleManager(
            self.redis,
            supplier,
            self.chain_reads,
            keys=self.keys,
            config=c.lifecycle,
            session_ttl_seconds=c.session_ttl_seconds,
            fence=fence,
            on_pass=on_pass,
            smst_layout=c.smst.layout,
            priority=self.priority,
            tree_builder=self.tree_builder,
        )
        worker = RelayWorker(
            self.redis,
            supplier,
            WorkerConfig(
                **c.worker.model_dump(),
                consumer_name=self.instance_id,
                namespace=self.keys.ns,
                session_ttl_seconds=c.session_ttl_seconds,
                dedup_ttl_seconds=c.dedup_ttl_seconds,
                fence=fence,
                smst_layout=c.smst.layout,
                wait_replicas=c.redis.wait_replicas,
                wait_timeout_ms=c.redis.wait_timeout_ms,
                priority=self.priority,
                wakeups=self.wakeups,
            ),
            on_batch=on_batch,
            # a new session ends the lifecycle's quiet blocks (lifecycle/manager.py)
            on_session_created=lambda _snapshot: lifecycle.sessions_created(),
        )
        return SupplierPipeline(supplier, worker, lifecycle)

    async def _start_pipeline(self, supplier: str, fence: Fence) -> None:
        pipeline = self._pipeline(supplier, fence)
        self.pipelines[supplier] = pipeline
        pipeline.start()
        log.info("mining supplier", extra={"supplier": supplier, "instance": self.instance_id})

    async def _stop_pipeline(self, supplier: str) -> None:
        pipeline = self.pipelines.pop(supplier, None)
        if pipeline is not None:
            # Stopped within half a renew interval (then cancelled): a lease dropped at its local
            # deadline (ttl - renew after the last renewal) is quiet before it can expire.
            await pipeline.stop(grace_seconds=self.config.leases.renew_seconds / 2)
            if self.wakeups is not None:
                self.wakeups.forget(self.keys.stream_key(supplier))
            log.info("stopped mining supplier", extra={"supplier": supplier})

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop``; then stop every pipeline and release every lease. Raises
        :class:`EvictionPolicyError` at once, before taking any lease, on an evicting Redis
        (unless ``redis.allow_eviction``)."""
        allow = self.config.redis.allow_eviction
        await check_eviction_policy(self.redis, allow_eviction=allow)
        tasks = [
            asyncio.create_task(self.leases.run(stop), name="leases"),
            asyncio.create_task(run_gc_freezer(stop), name="gc-freezer"),
            asyncio.create_task(self._watch_eviction_policy(stop), name="eviction-policy"),
        ]
        if self.wakeups is not None:
            tasks.append(asyncio.create_task(self.wakeups.run(stop), name="stream-wakeups"))
        if self.driver is not None:
            tasks.append(asyncio.create_task(self.driver(stop), name="chain-driver"))
        try:
            await asyncio.gather(*tasks)
        finally:
            await asyncio.gather(*(p.stop() for p in self.pipelines.values()))
            self.pipelines.clear()
            self.tree_builder.close()
            if self._lease_redis is not None:
                await self._lease_redis.aclose()

    async def _watch_eviction_policy(self, stop: asyncio.Event) -> None:
        """Re-read the policy every :data:`EVICTION_CHECK_SECONDS`; a policy turned evicting
        while running is an ERROR (the miner keeps going: stopping would lose more)."""
        while not await wait_or_stop(stop, EVICTION_CHECK_SECONDS):
            try:
                await check_eviction_policy(
                    self.redis, allow_eviction=self.config.redis.allow_eviction
                )
            except EvictionPolicyError as err:
                log.error("Redis eviction policy changed while running", extra={"error": str(err)})
