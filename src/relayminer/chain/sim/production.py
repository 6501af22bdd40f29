"""Block production of the simulated chain, one producer at a time.

:class:`BlockProducer` executes the mempool (DeliverTx), runs the proof and tokenomics
EndBlockers and commits the block in one MULTI/EXEC, fenced by a WATCH on the height key
(see :mod:`relayminer.chain.sim.chain` for the whole picture). Producing needs the producer
lease (``…:producer``, a token with a PX expiry).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from redis.exceptions import RedisError, WatchError

from relayminer.chain.base import Block, ChainEvent, ChainUnavailableError
from relayminer.chain.sim.errors import (
    BlockProducerBusyError,
    BlockProducerConflictError,
    SimChainStateError,
    TxRejectedError,
    transport_errors,
)
from relayminer.chain.sim.rules import (
    BlockContext,
    execute_msg,
    run_proof_end_blocker,
    settle_claims,
)
from relayminer.chain.sim.state import (
    BlockRecord,
    StateView,
    TxRecord,
    as_bytes,
    encode_events,
    tx_hash,
)

if TYPE_CHECKING:
    from relayminer.chain.sim.chain import SimulatedChain

__all__ = ["BlockProducer", "as_block", "block_hash_of"]

log = logging.getLogger(__name__)

# KEYS[1] lease; ARGV[1] token, ARGV[2] ttl ms. Acquire when free (1), renew when ours (2),
# else 0.
_ACQUIRE_OR_RENEW = """
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 2
end
return 0
"""

# KEYS[1] lease; ARGV[1] token. Compare-and-delete.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def block_hash_of(prev_hash: bytes, height: int, tx_hashes: Sequence[str]) -> bytes:
    """``SHA-256("relayminer-simchain/block/" || previous hash || BE64(height) || tx hashes)``."""
    h = hashlib.sha256(b"relayminer-simchain/block/")
    h.update(prev_hash)
    h.update(height.to_bytes(8, "big"))
    for th in tx_hashes:
        h.update(bytes.fromhex(th))
    return h.digest()


def as_block(record: BlockRecord) -> Block:
    return Block(height=record.height, hash=record.hash, time_unix=record.time_unix)


class BlockProducer:
    """Produces the blocks of one :class:`SimulatedChain` object (the producer lease holder)."""

    def __init__(
        self, chain: SimulatedChain, lease_seconds: float, clock: Callable[[], float]
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError(f"producer_lease_seconds must be > 0, got {lease_seconds}")
        self._chain = chain
        self._redis = chain._redis
        self.keys = chain.keys
        self._lease_ms = max(1, int(lease_seconds * 1000))
        self._clock = clock
        self._token = uuid.uuid4().hex
        self._running = False
        self._produce_lock = asyncio.Lock()
        self._acquire_script = self._redis.register_script(_ACQUIRE_OR_RENEW)
        self._release_script = self._redis.register_script(_RELEASE)

    # --- producer lease -------------------------------------------------------------------

    async def _acquire_or_renew(self) -> int:
        with transport_errors("acquire producer lease"):
            got = await self._acquire_script(
                keys=[self.keys.producer], args=[self._token, self._lease_ms]
            )
        return int(got)

    async def acquire(self) -> bool:
        """Take (or renew) the block-producer lease; False when another object holds it."""
        return await self._acquire_or_renew() != 0

    async def release(self) -> None:
        """Release the producer lease if this object holds it."""
        with transport_errors("release producer lease"):
            await self._release_script(keys=[self.keys.producer], args=[self._token])

    # --- block production -----------------------------------------------------------------

    async def produce_block(self) -> Block:
        """See :meth:`SimulatedChain.produce_block`."""
        async with self._produce_lock:
            lease = await self._acquire_or_renew()
            if lease == 0:
                raise BlockProducerBusyError(
                    "another process holds the simulated chain's block-producer lease"
                )
            try:
                block = await self._produce()
            finally:
                if lease == 1 and not self._running:  # we took it for this call only
                    with contextlib.suppress(ChainUnavailableError):
                        await self.release()
        self._chain._waiter.notify()
        return block

    async def _produce(self) -> Block:
        try:
            return await self._produce_unguarded()
        except WatchError as err:
            raise BlockProducerConflictError(
                "the chain height moved while the block was being built"
            ) from err
        except (RedisError, OSError) as err:
            raise ChainUnavailableError(f"simulated chain: block production failed: {err}") from err

    async def _produce_unguarded(self) -> Block:
        chain = self._chain
        latest = await chain._height()
        prev = await chain._block_record(latest)
        height = latest + 1
        raw_txs = [as_bytes(r) for r in await self._redis.lrange(self.keys.mempool, 0, -1)]
        view = StateView(self._redis, self.keys)
        ctx = BlockContext(chain.config, height, chain.block_hash)
        events: list[ChainEvent] = []
        records: dict[str, TxRecord] = {}
        hashes: list[str] = []
        for raw in raw_txs:
            th = tx_hash(raw)
            hashes.append(th)
            tx_view = view.child()
            tx_events: list[ChainEvent] = []
            index = 0
            try:
                for msg in chain._decode_tx(raw):
                    tx_events.append(await execute_msg(ctx, tx_view, msg))
                    index += 1
            except (TxRejectedError, SimChainStateError) as err:
                if isinstance(err, TxRejectedError):
                    failed = TxRecord(
                        th, height, err.code, err.log_at(index), err.codespace, msg_index=index
                    )
                else:
                    failed = TxRecord(th, height, 2, str(err), "sdk")  # tx parse error
                view.count("txs_failed")
                records[th] = failed
                events.append(
                    ChainEvent(height, "EventTxFailed", {"tx_hash": th, "log": failed.log})
                )
                log.info(
                    "simulated chain: tx failed at DeliverTx",
                    extra={"tx_hash": th, "height": height, "reason": failed.log},
                )
                continue
            tx_view.merge()
            view.count("txs_executed")
            records[th] = TxRecord(th, height, 0, "", events=tuple(tx_events))
            events.extend(tx_events)
        events.extend(await run_proof_end_blocker(ctx, view))
        events.extend(await settle_claims(ctx, view))
        record = BlockRecord(
            height, block_hash_of(prev.hash, height, hashes), self._clock(), len(hashes)
        )
        notice = json.dumps({"height": height, "hash": record.hash.hex()}, separators=(",", ":"))
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.watch(self.keys.height)
            current = await pipe.get(self.keys.height)
            if current is None or int(current) != latest:
                raise BlockProducerConflictError(
                    f"chain height moved from {latest} to {current!r} while building {height}"
                )
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set(self.keys.height, height)
            pipe.hset(self.keys.blocks, str(height), record.encode())
            if raw_txs:
                pipe.ltrim(self.keys.mempool, len(raw_txs), -1)
            view.queue_writes(pipe)
            pipe.hset(self.keys.events, str(height), encode_events(events))
            for th, rec in records.items():
                pipe.hset(self.keys.txs, th, rec.encode())
            # A Redis Cluster MULTI holds keyed commands of one slot only: there the notice (a
            # wake-up hint; waiters also poll) follows the commit.
            in_multi = not chain._kb.hash_tagged
            if in_multi:
                pipe.publish(chain._channel, notice)
            await pipe.execute()
        if not in_multi:
            await self._redis.publish(chain._channel, notice)
        chain._hash_cache[height] = record.hash
        log.debug(
            "simulated chain: block committed",
            extra={"height": height, "txs": len(hashes), "events": len(events)},
        )
        return as_block(record)

    async def run(self, stop: asyncio.Event) -> None:
        """See :meth:`SimulatedChain.run`."""
        await self._chain.init()
        loop = asyncio.get_running_loop()
        interval = self._chain.config.block_time_seconds
        next_tick = loop.time() + interval
        self._running = True
        was_producing = False
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, next_tick - loop.time()))
                if stop.is_set():
                    break
                next_tick = max(next_tick + interval, loop.time())
                try:
                    block = await self.produce_block()
                except BlockProducerBusyError:
                    if was_producing:
                        log.warning("simulated chain: lost the block-producer lease")
                    was_producing = False
                    continue
                except (BlockProducerConflictError, ChainUnavailableError) as err:
                    log.warning(
                        "simulated chain: block production failed", extra={"error": str(err)}
                    )
                    continue
                if not was_producing:
                    log.info("simulated chain: producing blocks", extra={"height": block.height})
                was_producing = True
        finally:
            self._running = False
            with contextlib.suppress(ChainUnavailableError):
                await self.release()
