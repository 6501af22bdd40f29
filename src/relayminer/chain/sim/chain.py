"""A simulated Pocket chain in Redis: the whole claim/proof/settlement flow on one laptop.

:class:`SimulatedChain` implements :class:`relayminer.chain.base.Chain` on top of Redis, so several
processes (a block producer, miners, a load generator, a dashboard) share one chain. Layout of
the keys: :mod:`relayminer.chain.sim.state`; rules of a block: :mod:`relayminer.chain.sim.rules`;
session ids: :mod:`relayminer.chain.sim.sessions`.

Block production (:meth:`SimulatedChain.produce_block`):

1. DeliverTx: every tx of the mempool, in FIFO order, re-checked at the new height; a tx is
   atomic (one failing message → none applies, ``EventTxFailed`` with the reason);
2. proof EndBlocker: every proof delivered in this block is validated, the claim becomes
   VALIDATED or INVALID, the proof object is dropped;
3. tokenomics EndBlocker: claims whose settlement height is this block are settled or expired;
4. commit: one MULTI/EXEC writes the block, the state changes and the events, removes the
   executed txs from the mempool and publishes ``{"height": h, "hash": "<hex>"}`` on
   ``KeyBuilder.block_event_channel()``.

**One producer at a time.** Producing needs the producer lease (``…:producer``, a token with a
PX expiry). ``produce_block()`` takes it for the duration of the call and releases it, unless
the object already held it (``acquire_producer()``) or is inside :meth:`run`, which keeps and
renews it every tick (other ``run`` loops stand by and take over when it expires). A
``produce_block()`` while another object holds the lease raises :class:`BlockProducerBusyError`
at once (it never waits). As a fence, the commit WATCHes the height key: if the chain moved
meanwhile (e.g. the lease expired during a long pause), nothing is written and
:class:`BlockProducerConflictError` is raised.

**Block hashes** are ``SHA-256("relayminer-simchain/block/" || previous hash || BE64(height) ||
hashes of the txs executed in the block)``; genesis (height 1) is
``SHA-256("relayminer-simchain/genesis/" || decimal(seed))``. They do not depend on wall time,
so a run is reproducible.

**Mempool drops.** ``broadcast`` answers code 0 for every tx passing CheckTx, but drops some
silently: the next ``drop_next_txs(n)`` accepted txs, plus a ``drop_rate`` share decided by
``SHA-256(seed, accepted-tx sequence number, tx hash)`` (deterministic for a given order of
broadcasts, shared across processes).

Signatures (application ring signature, supplier signature) are never checked; see
:mod:`relayminer.chain.sim.rules` for everything else that is simplified.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, WatchError

from relayminer.chain.base import (
    Block,
    ChainEvent,
    ChainUnavailableError,
    Claim,
    Msg,
    OnChainSession,
    ServiceParams,
    TxResult,
)
from relayminer.chain.sim.config import SimChainConfig
from relayminer.chain.sim.errors import (
    SimChainConfigMismatchError,
    SimChainNotInitialisedError,
    TxRejectedError,
    UnknownBlockError,
    UnknownServiceError,
    transport_errors,
)
from relayminer.chain.sim.production import BlockProducer, as_block
from relayminer.chain.sim.rules import BlockContext, execute_msg
from relayminer.chain.sim.sessions import session_for
from relayminer.chain.sim.state import (
    TOTAL_FIELDS,
    BlockRecord,
    SimChainKeys,
    StateView,
    TxRecord,
    as_bytes,
    decode_claim,
    decode_events,
    decode_tx,
    encode_events,
    encode_tx,
    tx_hash,
)
from relayminer.chain.sim.waiting import GENESIS_HEIGHT, BlockWaiter
from relayminer.keys import KeyBuilder
from relayminer.protocol.proof_requirement import ProofParams
from relayminer.protocol.windows import SharedParams

__all__ = ["SimChainSummary", "SimulatedChain", "TxRecord"]

log = logging.getLogger(__name__)

# KEYS[1] forced-drop counter. Returns 1 (and decrements) when a drop is pending.
_TAKE_FORCED_DROP = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  redis.call('DECR', KEYS[1])
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class SimChainSummary:
    """Counters of the chain's life, for the demo summary and tests."""

    height: int
    claims_created: int
    claims_updated: int
    claims_settled: int
    claims_expired: int
    claims_discarded: int
    proofs_submitted: int
    proofs_validated: int
    proofs_invalid: int
    settled_upokt: int
    minted_upokt: int
    supplier_rewards_upokt: int
    slashed_upokt: int
    txs_accepted: int
    txs_dropped: int
    txs_rejected: int
    txs_executed: int
    txs_failed: int

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


def _genesis_hash(seed: int) -> bytes:
    return hashlib.sha256(f"relayminer-simchain/genesis/{seed}".encode()).digest()


class SimulatedChain:
    """A :class:`~relayminer.chain.base.Chain` simulated in Redis (see the module docstring).

    ``redis`` must use ``decode_responses=False``. ``poll_interval_seconds`` is the polling
    fallback of :meth:`wait_for_block`; ``producer_lease_seconds`` the producer lease TTL
    (default: ``max(5, 3 x block_time_seconds)``); ``clock`` gives block times (unix seconds).
    """

    def __init__(
        self,
        redis: Redis,
        config: SimChainConfig,
        *,
        keys: KeyBuilder | None = None,
        poll_interval_seconds: float = 0.5,
        producer_lease_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
        tx_decoder: Callable[[bytes], list[Msg]] | None = None,
    ) -> None:
        if not isinstance(config, SimChainConfig):
            raise TypeError(f"config must be a SimChainConfig, got {type(config).__name__}")
        if poll_interval_seconds <= 0:
            raise ValueError(f"poll_interval_seconds must be > 0, got {poll_interval_seconds}")
        self._redis = redis
        self.config = config
        self._kb = keys if keys is not None else KeyBuilder.for_client(redis)
        self.keys = SimChainKeys(self._kb)
        self._channel = self._kb.block_event_channel()
        lease = producer_lease_seconds
        if lease is None:
            lease = max(5.0, 3.0 * config.block_time_seconds)
        self._clock = clock
        # How mempool entries become messages: the simulator's own encoding by default; the
        # local node passes a TxRaw decoder (and enqueues TxRaw bytes with ``enqueue_tx``).
        self._decode_tx = tx_decoder if tx_decoder is not None else decode_tx
        self._hash_cache: dict[int, bytes] = {}
        self._take_drop_script = redis.register_script(_TAKE_FORCED_DROP)
        self._waiter = BlockWaiter(
            redis, self._channel, poll_interval_seconds, self.latest_block, self.block
        )
        self._producer = BlockProducer(self, lease, clock)

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    async def attach(
        cls, redis: Redis, *, keys: KeyBuilder | None = None, **kwargs: Any
    ) -> SimulatedChain:
        """A chain object for an existing simulated chain, with the config stored at genesis."""
        sim_keys = SimChainKeys(keys if keys is not None else KeyBuilder.for_client(redis))
        with transport_errors("read config"):
            raw = await redis.get(sim_keys.config)
        if raw is None:
            raise SimChainNotInitialisedError(
                f"no simulated chain under {sim_keys.prefix} (call init() in the producer first)"
            )
        return cls(redis, SimChainConfig.from_json(raw), keys=keys, **kwargs)

    async def init(self) -> Block:
        """Create genesis (height 1) if absent; idempotent and safe from several processes.

        Raises :class:`SimChainConfigMismatchError` if the chain in Redis was created with a
        different configuration.
        """
        cfg = self.config
        snapshot = cfg.to_json().encode()
        with transport_errors("init"):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(self.keys.height)
                    existing = await pipe.get(self.keys.height)
                    if existing is None:
                        genesis = BlockRecord(
                            GENESIS_HEIGHT, _genesis_hash(cfg.seed), self._clock()
                        )
                        pipe.multi()  # type: ignore[no-untyped-call]
                        pipe.set(self.keys.config, snapshot)
                        pipe.hset(self.keys.blocks, str(GENESIS_HEIGHT), genesis.encode())
                        pipe.hset(self.keys.events, str(GENESIS_HEIGHT), encode_events([]))
                        for app in sorted(cfg.applications):
                            pipe.hset(self.keys.app_stakes, app, cfg.application_stake_upokt)
                        for sup in sorted(cfg.suppliers):
                            pipe.hset(self.keys.supplier_stakes, sup, cfg.supplier_stake_upokt)
                        for address, amount in sorted(cfg.initial_balances.items()):
                            pipe.hset(self.keys.balances, address, amount)
                        pipe.set(self.keys.height, GENESIS_HEIGHT)
                        await pipe.execute()
                        log.info(
                            "simulated chain genesis created",
                            extra={"prefix": self.keys.prefix, "seed": cfg.seed},
                        )
                except WatchError:
                    pass  # another process created genesis at the same time
            stored = await self._redis.get(self.keys.config)
        if stored is not None and stored != snapshot:
            raise SimChainConfigMismatchError(
                f"the simulated chain under {self.keys.prefix} was created with another "
                "configuration"
            )
        return await self.latest_block()

    async def close(self) -> None:
        """Stop the block listener and release the producer lease if held."""
        await self._waiter.close()
        with contextlib.suppress(ChainUnavailableError):
            await self.release_producer()

    async def __aenter__(self) -> SimulatedChain:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- Chain: reads ---------------------------------------------------------------------

    async def _height(self) -> int:
        with transport_errors("read height"):
            raw = await self._redis.get(self.keys.height)
        if raw is None:
            raise SimChainNotInitialisedError(
                f"no simulated chain under {self.keys.prefix}: call init() first"
            )
        return int(raw)

    async def _block_record(self, height: int) -> BlockRecord:
        with transport_errors("read block"):
            raw = await self._redis.hget(self.keys.blocks, str(height))
        if raw is None:
            raise UnknownBlockError(f"no committed block at height {height}")
        return BlockRecord.decode(height, as_bytes(raw))

    async def latest_block(self) -> Block:
        return as_block(await self._block_record(await self._height()))

    async def block(self, height: int) -> Block:
        """The committed block at ``height`` (:class:`UnknownBlockError` if absent)."""
        return as_block(await self._block_record(height))

    async def block_hash(self, height: int) -> bytes:
        cached = self._hash_cache.get(height)
        if cached is not None:
            return cached
        record = await self._block_record(height)
        self._hash_cache[height] = record.hash  # committed blocks never change
        return record.hash

    async def shared_params(self, height: int | None = None) -> SharedParams:
        """Constant: the simulated chain has no params history."""
        return self.config.shared_params

    async def proof_params(self) -> ProofParams:
        return self.config.proof_params

    async def service(self, service_id: str, height: int) -> ServiceParams:
        svc = self.config.services.get(service_id)
        if svc is None:
            raise UnknownServiceError(f"unknown service {service_id!r}")
        return ServiceParams(
            service_id=service_id,
            compute_units_per_relay=svc.compute_units_per_relay,
            relay_difficulty_target=svc.relay_difficulty_target,
        )

    async def get_session(
        self, application_address: str, service_id: str, height: int
    ) -> OnChainSession:
        """Deterministic (:mod:`relayminer.chain.sim.sessions`); any height ``>= 1``."""
        return session_for(self.config, application_address, service_id, height)

    async def get_claim(self, supplier: str, session_id: str) -> Claim | None:
        with transport_errors("read claim"):
            raw = await self._redis.hget(self.keys.claims(supplier), session_id)
        return None if raw is None else decode_claim(as_bytes(raw))

    async def claims(self, supplier: str) -> list[Claim]:
        with transport_errors("read claims"):
            raw = await self._redis.hgetall(self.keys.claims(supplier))
        found = [decode_claim(as_bytes(v)) for v in raw.values()]
        found.sort(
            key=lambda c: (c.session_header.session_end_block_height, c.session_header.session_id)
        )
        return found

    async def events(self, from_height: int, to_height: int) -> list[ChainEvent]:
        low = max(from_height, GENESIS_HEIGHT)
        high = min(to_height, await self._height())
        if high < low:
            return []
        heights = list(range(low, high + 1))
        with transport_errors("read events"):
            raws = await self._redis.hmget(self.keys.events, [str(h) for h in heights])
        out: list[ChainEvent] = []
        for h, raw in zip(heights, raws, strict=True):
            if raw is not None:
                out.extend(decode_events(h, as_bytes(raw)))
        return out

    # --- extras: balances, summary, txs ---------------------------------------------------

    async def _hash_int(self, key: str, name: str) -> int:
        with transport_errors("read balance"):
            raw = await self._redis.hget(key, name)
        return 0 if raw is None else int(raw)

    async def balance(self, address: str) -> int:
        """Liquid uPOKT of ``address`` (rewards are paid here)."""
        return await self._hash_int(self.keys.balances, address)

    async def supplier_stake(self, supplier: str) -> int:
        """Staked uPOKT of a supplier (slashing burns from it)."""
        return await self._hash_int(self.keys.supplier_stakes, supplier)

    async def application_stake(self, application: str) -> int:
        """Staked uPOKT of an application (settlement burns from it)."""
        return await self._hash_int(self.keys.app_stakes, application)

    async def summary(self) -> SimChainSummary:
        """Counts of claims settled / expired, rewards paid, txs dropped ..."""
        height = await self._height()
        with transport_errors("read totals"):
            raws = await self._redis.hmget(self.keys.totals, list(TOTAL_FIELDS))
        values = {
            name: 0 if raw is None else int(raw)
            for name, raw in zip(TOTAL_FIELDS, raws, strict=True)
        }
        return SimChainSummary(height=height, **values)

    async def tx_result(self, tx_hash_hex: str) -> TxRecord | None:
        """How an included tx executed; None if it never reached a block (pending or dropped)."""
        with transport_errors("read tx"):
            raw = await self._redis.hget(self.keys.txs, tx_hash_hex.upper())
        if raw is None:
            return None
        return TxRecord.decode(tx_hash_hex.upper(), raw)

    async def tx_status(self, tx_hash: str) -> TxResult | None:
        """The :class:`Chain` view of :meth:`tx_result`."""
        record = await self.tx_result(tx_hash)
        if record is None:
            return None
        return TxResult(
            tx_hash=record.tx_hash, code=record.code, log=record.log, codespace=record.codespace
        )

    async def mempool_size(self) -> int:
        with transport_errors("read mempool"):
            return int(await self._redis.llen(self.keys.mempool))

    async def drop_next_txs(self, n: int) -> None:
        """Silently drop the next ``n`` txs that pass CheckTx (they still answer code 0)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        with transport_errors("drop_next_txs"):
            await self._redis.incrby(self.keys.drop_next, n)

    async def enqueue_tx(self, raw: bytes) -> str:
        """Append already-checked tx bytes to the mempool (no CheckTx here, no drop); the tx
        hash. For a caller that runs its own CheckTx and decodes with ``tx_decoder``."""
        with transport_errors("enqueue tx"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(self.keys.totals, "txs_accepted", 1)
                pipe.rpush(self.keys.mempool, raw)
                await pipe.execute()
        return tx_hash(raw)

    # --- broadcast (CheckTx) --------------------------------------------------------------

    async def _check_tx(self, msgs: Sequence[Msg], height: int) -> TxResult | None:
        """The rejection of ``msgs`` at ``height`` (= latest + 1), or None when they pass.

        A throwaway view runs every message: the ``ValidateBasic`` checks a node's CheckTx
        runs, and the handlers a node's Simulate runs (a client simulates for gas before
        broadcasting, so a window miss is seen at broadcast, as code 1 / ``undefined``).
        """
        view = StateView(self._redis, self.keys)
        ctx = BlockContext(self.config, height, self.block_hash)
        for index, msg in enumerate(msgs):
            try:
                await execute_msg(ctx, view, msg)
            except TxRejectedError as err:
                return TxResult("", err.code, err.log_at(index), err.codespace)
        return None

    async def broadcast(self, msgs: Sequence[Msg]) -> TxResult:
        """Simulate + CheckTx against the latest height ``H`` (the tx lands at ``>= H + 1``).

        Code 0: accepted into the mempool, or silently dropped (forced / ``drop_rate``).
        Otherwise rejected, with a node's ``(codespace, code, log)``; nothing enters the
        mempool.
        """
        if not msgs:
            return TxResult(
                tx_hash="", code=18, log="invalid request: tx holds no message", codespace="sdk"
            )
        try:
            raw = encode_tx(msgs)
        except TypeError as err:
            return TxResult(tx_hash="", code=2, log=f"tx parse error: {err}", codespace="sdk")
        th = tx_hash(raw)
        latest = await self._height()
        try:
            problem = await self._check_tx(msgs, latest + 1)
        except (RedisError, OSError) as err:
            raise ChainUnavailableError(f"simulated chain: CheckTx failed: {err}") from err
        if problem is not None:
            with transport_errors("count rejected tx"):
                await self._redis.hincrby(self.keys.totals, "txs_rejected", 1)
            log.info(
                "simulated chain: tx rejected at CheckTx",
                extra={"tx_hash": th, "height": latest, "reason": problem.log},
            )
            return TxResult(th, problem.code, problem.log, problem.codespace)
        with transport_errors("broadcast"):
            dropped = bool(await self._take_drop_script(keys=[self.keys.drop_next]))
            seq = int(await self._redis.incr(self.keys.tx_seq))
            if not dropped and self.config.drop_rate > 0:
                digest = hashlib.sha256(f"{self.config.seed}:{seq}:{th}".encode()).digest()
                dropped = int.from_bytes(digest[:8], "big") / 2**64 < self.config.drop_rate
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(self.keys.totals, "txs_accepted", 1)
                if dropped:
                    pipe.hincrby(self.keys.totals, "txs_dropped", 1)
                else:
                    pipe.rpush(self.keys.mempool, raw)
                await pipe.execute()
        if dropped:
            log.info(
                "simulated chain: tx accepted and silently dropped from the mempool",
                extra={"tx_hash": th, "height": latest},
            )
        return TxResult(tx_hash=th, code=0, log="")

    # --- block production (:mod:`relayminer.chain.sim.production`) -------------------------

    async def acquire_producer(self) -> bool:
        """Take (or renew) the block-producer lease; False when another object holds it.

        While held, :meth:`produce_block` keeps it (it only releases a lease it took itself);
        it expires after ``producer_lease_seconds`` unless renewed (by this call, by
        :meth:`produce_block` or by :meth:`run`).
        """
        return await self._producer.acquire()

    async def release_producer(self) -> None:
        """Release the producer lease if this object holds it."""
        await self._producer.release()

    async def produce_block(self) -> Block:
        """Execute the mempool, run the EndBlockers, commit and publish the next block.

        Raises :class:`BlockProducerBusyError` (at once, no waiting) if another object holds
        the producer lease, :class:`BlockProducerConflictError` if another producer committed
        the height meanwhile, :class:`ChainUnavailableError` on Redis failures.
        """
        return await self._producer.produce_block()

    async def run(self, stop: asyncio.Event) -> None:
        """Produce a block every ``block_time_seconds`` until ``stop`` is set.

        Calls :meth:`init` first. Holds and renews the producer lease while running; when
        another process holds it, this loop stands by and takes over once it expires.
        """
        await self._producer.run(stop)

    # --- waiting for blocks (:mod:`relayminer.chain.sim.waiting`) --------------------------

    async def wait_for_block(
        self,
        min_height: int,
        timeout: float | None = None,  # noqa: ASYNC109 - the Chain protocol's signature
    ) -> Block:
        """Wait until a block at ``min_height`` or above is committed; return the newest block.

        Woken in-process when this object produced the block, through Redis pub/sub when
        another process did, and by polling every ``poll_interval_seconds`` as a fallback.
        Raises ``TimeoutError`` after ``timeout`` seconds. Before genesis it keeps waiting.
        Call :meth:`close` when done: the first call starts a background subscriber task.
        """
        return await self._waiter.wait_for_block(min_height, timeout)

    def blocks(self, from_height: int) -> AsyncIterator[Block]:
        """Every committed block from ``from_height`` on, in order (waits for new ones)."""
        return self._waiter.blocks(from_height)
