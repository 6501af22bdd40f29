"""Supplier ownership leases: which replica mines which supplier (docs/architecture.md).

Lease key ``ha:miner:claim:{supplier}`` holds the owner's token (``{instance}:{nonce}``, new on
every acquisition) with a TTL. Replicas register in ``ha:miner:active`` (heartbeat key
``ha:miner:instance:{id}``) and each takes at most its fair share, ``ceil(suppliers /
replicas)``.

Safety, better than the Go miner (whose old owner keeps running after losing a lease):

- a replica stops a supplier's pipeline as soon as a renewal shows the lease is not its own;
- it also stops it, without asking Redis, once ``ttl - renew`` has passed since its last
  successful renewal started, i.e. before the lease can expire and be taken by another replica;
- and every write of a pipeline goes through scripts that check the :class:`Fence` (lease key
  still holds our token), so even a replica that has not noticed anything cannot write.

A dead owner's suppliers are taken over within ``ttl + renew`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from relayminer import metrics
from relayminer.keys import KeyBuilder
from relayminer.runtime.aio import wait_or_stop

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Fence:
    """A supplier lease: writes happen only while ``key`` still holds ``token``."""

    key: str
    token: str


OnAcquired = Callable[[str, Fence], Awaitable[None]]
OnLost = Callable[[str], Awaitable[None]]


@dataclass
class _Held:
    fence: Fence
    renewed_at: float  # monotonic time at which the last successful renewal was *sent*


class SupplierLeases:
    """Acquires, renews and releases this replica's supplier leases."""

    def __init__(
        self,
        redis: Redis,
        instance_id: str,
        suppliers: list[str],
        *,
        keys: KeyBuilder | None = None,
        ttl_seconds: float = 15.0,
        renew_seconds: float = 3.0,
        on_acquired: OnAcquired,
        on_lost: OnLost,
    ) -> None:
        if renew_seconds * 2 > ttl_seconds:
            raise ValueError("renew_seconds must be at most half of ttl_seconds")
        self._redis = redis
        self.instance_id = instance_id
        self.suppliers = list(suppliers)
        self.keys = keys or KeyBuilder.for_client(redis)
        self.ttl = ttl_seconds
        self.renew = renew_seconds
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._renew_script = redis.register_script(_RENEW)
        self._release_script = redis.register_script(_RELEASE)
        self.held: dict[str, _Held] = {}

    @property
    def owned(self) -> list[str]:
        return sorted(self.held)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep leases until ``stop``; then stop every pipeline and release every lease."""
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except (RedisError, OSError) as err:
                    log.warning("lease round failed", extra={"error": repr(err)})
                    await self._enforce_deadlines()
                await wait_or_stop(stop, self.renew)
        finally:
            await self.release_all()

    async def tick(self) -> None:
        """One round: heartbeat, renew, enforce deadlines, rebalance, acquire."""
        await self._heartbeat()
        await self._renew_all()
        await self._enforce_deadlines()
        share = await self.fair_share()
        await self._drop_all(self.owned[share:], release=True)  # more than our share
        await self._acquire(await self._free(share - len(self.held)))

    async def fair_share(self) -> int:
        active_key = self.keys.miner_active_set_key()
        members: set[bytes] = await self._redis.smembers(active_key)  # type: ignore[assignment]
        alive = 0
        for member in members:
            instance = member.decode()
            if await self._redis.exists(self.keys.miner_instance_key(instance)):
                alive += 1
            else:  # a dead replica's heartbeat expired
                await self._redis.srem(active_key, member)
        return math.ceil(len(self.suppliers) / max(1, alive))

    async def _heartbeat(self) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(
                self.keys.miner_instance_key(self.instance_id),
                str(time.time_ns()),
                px=int(self.ttl * 1000),
            )
            pipe.sadd(self.keys.miner_active_set_key(), self.instance_id)
            await pipe.execute()

    async def _free(self, wanted: int) -> list[str]:
        """Up to ``wanted`` suppliers whose lease nobody holds (one pipelined round trip)."""
        candidates = [s for s in self.suppliers if s not in self.held]
        if wanted <= 0 or not candidates:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for supplier in candidates:
                pipe.exists(self.keys.miner_claim_key(supplier))
            held_elsewhere = await pipe.execute()
        free = [s for s, n in zip(candidates, held_elsewhere, strict=True) if not n]
        return free[:wanted]

    async def _acquire(self, suppliers: list[str]) -> None:
        """Try to take the leases of ``suppliers`` (one pipelined ``SET NX PX`` each, one round
        trip), then start the pipelines of those taken."""
        if not suppliers:
            return
        tokens = {s: f"{self.instance_id}:{secrets.token_hex(8)}" for s in suppliers}
        started = time.monotonic()
        async with self._redis.pipeline(transaction=False) as pipe:
            for supplier in suppliers:
                pipe.set(
                    self.keys.miner_claim_key(supplier),
                    tokens[supplier],
                    nx=True,
                    px=int(self.ttl * 1000),
                )
            taken = await pipe.execute()
        for supplier, ok in zip(suppliers, taken, strict=True):
            if not ok:
                continue
            fence = Fence(self.keys.miner_claim_key(supplier), tokens[supplier])
            self.held[supplier] = _Held(fence, started)
            metrics.LEASE_OWNED.labels(supplier=supplier).set(1)
            log.info("lease acquired", extra={"supplier": supplier, "token": fence.token})
            try:
                await self._on_acquired(supplier, fence)
            except Exception:
                log.exception("pipeline start failed, releasing", extra={"supplier": supplier})
                await self._drop(supplier, release=True)

    async def _renew_all(self) -> None:
        """Renew every held lease in one round trip (a pipeline of independent compare-and-
        expire scripts): a replica owning 1,000 suppliers must not need 1,000 sequential round
        trips, each waiting its turn on a busy event loop, before the leases' deadlines."""
        suppliers = list(self.held)
        if not suppliers:
            return
        started = time.monotonic()
        ttl_ms = int(self.ttl * 1000)
        fences = [self.held[s].fence for s in suppliers]
        results: list[Any]
        if isinstance(self._redis, RedisCluster):  # a cluster pipeline refuses scripts
            results = list(
                await asyncio.gather(
                    *(self._renew_script(keys=[f.key], args=[f.token, ttl_ms]) for f in fences)
                )
            )
        else:
            async with self._redis.pipeline(transaction=False) as pipe:
                for f in fences:
                    await self._renew_script(keys=[f.key], args=[f.token, ttl_ms], client=pipe)
                results = await pipe.execute()
        lost = []
        for supplier, ok in zip(suppliers, results, strict=True):
            held = self.held.get(supplier)
            if held is None:  # dropped meanwhile
                continue
            if ok:
                held.renewed_at = started
            else:
                log.warning("lease lost", extra={"supplier": supplier})
                lost.append(supplier)
        await self._drop_all(lost, release=False)

    async def _enforce_deadlines(self) -> None:
        """Stop what we can no longer prove we own, before the lease could expire."""
        deadline = self.ttl - self.renew
        now = time.monotonic()
        late = [s for s, held in self.held.items() if now - held.renewed_at >= deadline]
        for supplier in late:
            log.warning("lease not renewed in time, stopping", extra={"supplier": supplier})
        await self._drop_all(late, release=False)

    async def _drop_all(self, suppliers: list[str], *, release: bool) -> None:
        """Drop several leases at once: each pipeline still stops before its lease goes, but
        1,000 suppliers do not wait for each other's grace periods one after another."""
        await asyncio.gather(*(self._drop(s, release=release) for s in suppliers))

    async def _drop(self, supplier: str, *, release: bool) -> None:
        held = self.held.pop(supplier, None)
        if held is None:
            return
        metrics.LEASE_OWNED.labels(supplier=supplier).set(0)
        try:
            await self._on_lost(supplier)  # the pipeline stops before the lease goes
        finally:
            if release:
                try:
                    await self._release_script(keys=[held.fence.key], args=[held.fence.token])
                except (RedisError, OSError) as err:
                    log.warning(
                        "lease release failed (it will expire)",
                        extra={"supplier": supplier, "error": repr(err)},
                    )

    async def release_all(self) -> None:
        await self._drop_all(list(self.held), release=True)
        try:
            await self._redis.srem(self.keys.miner_active_set_key(), self.instance_id)
            await self._redis.delete(self.keys.miner_instance_key(self.instance_id))
        except (RedisError, OSError):
            pass
