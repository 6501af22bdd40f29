"""The localnet's application: CheckTx, Simulate and block production around the simulator.

:class:`LocalApp` is what the node's servers call. It composes three things and owns no chain
rules itself:

- the ante (:mod:`.ante`): signatures, accounts, fees, sequences, unordered nonces;
- the simulated chain (:class:`~relayminer.chain.sim.chain.SimulatedChain`): claim and proof
  handlers, the proof EndBlocker, settlement; its mempool holds the TxRaw bytes (``tx_decoder``)
  so its tx hashes are the CometBFT ones;
- the node's records (:mod:`.store`): the pending mempool, per-tx results, per-block tx lists
  and ``finalize_block_events``, in Redis.

CheckTx runs only the ante, as a node does: message-handler failures (windows, sessions, claim
missing ...) surface in DeliverTx (the block results) and in Simulate. One lock serialises
CheckTx and block production: a localnet is one process, and the lock makes the ante's read,
check and write one step. Block ``h`` executes the txs accepted since block ``h-1``, all of
them, in order.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from google.protobuf.any_pb2 import Any as AnyProto
from redis.asyncio import Redis

from relayminer.chain.base import Block, Claim
from relayminer.chain.sim.chain import SimulatedChain
from relayminer.chain.sim.errors import TxRejectedError
from relayminer.chain.sim.node.accounts import AccountStore, NodeKeys
from relayminer.chain.sim.node.ante import (
    AnteContext,
    AnteEffects,
    AnteInputs,
    Mode,
    execution_gas,
    run_ante,
)
from relayminer.chain.sim.node.codes import TxError, deliver_log, sdk_error
from relayminer.chain.sim.node.events import (
    AbciEvent,
    EventContext,
    encode_block_events,
    encode_msg_event,
    message_event,
    tx_events,
)
from relayminer.chain.sim.node.genesis import LocalnetConfig
from relayminer.chain.sim.node.store import NodeStore, PendingTx, TxResultDoc
from relayminer.chain.sim.node.txcodec import DecodedTx, TxDecodeError, decode_messages, decode_tx
from relayminer.chain.sim.rules import BlockContext, execute_msg
from relayminer.chain.sim.state import StateView
from relayminer.keys import KeyBuilder
from relayminer.proto.cosmos_abci_pb2 import TxMsgData

__all__ = ["CheckResult", "LocalApp", "MempoolError", "SimulateResult", "SimulationError"]


class MempoolError(Exception):
    """CometBFT refused the tx before CheckTx ("tx already exists in cache")."""


class SimulationError(Exception):
    """Simulate failed; the text is the SDK's (gRPC Unknown)."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    tx_hash: str
    code: int = 0
    codespace: str = ""
    log: str = ""
    gas_wanted: int = 0
    gas_used: int = 0


@dataclass(frozen=True, slots=True)
class SimulateResult:
    gas_wanted: int
    gas_used: int
    events: list[AbciEvent]
    msg_responses: list[AnyProto]


def block_time_ns(block: Block) -> int:
    """Block times are kept to the millisecond, so the float in the simulator is exact."""
    return round(block.time_unix * 1000) * 1_000_000


def _msg_responses(tx: DecodedTx) -> list[AnyProto]:
    return [AnyProto(type_url=f"{url}Response") for url in tx.type_urls]


def _gas_suffix(wanted: int, used: int) -> str:
    return f" With gas wanted: '{wanted}' and gas used: '{used}' "


class LocalApp:
    def __init__(
        self,
        redis: Redis,
        config: LocalnetConfig,
        *,
        keys: KeyBuilder | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._redis = redis
        self._wall = wall_clock
        self._next_time = round(wall_clock(), 3)
        self.chain = SimulatedChain(
            redis,
            config.sim_config(),
            keys=keys,
            clock=lambda: self._next_time,
            tx_decoder=decode_messages,
        )
        self.node_keys = NodeKeys(keys)
        self.accounts = AccountStore(redis, self.node_keys, self.chain.keys)
        self.store = NodeStore(redis, self.node_keys)
        self._lock = asyncio.Lock()

    async def init(self) -> Block:
        """Genesis: the simulated chain (idempotent, same config) and the accounts (once)."""
        async with self._lock:
            block = await self.chain.init()
            await self.accounts.create_genesis_accounts(
                [a for a, _ in self.config.genesis_accounts()]
            )
            return block

    async def close(self) -> None:
        await self.chain.close()

    def _tick(self, after: Block) -> float:
        """The next block's time: wall clock in ms, strictly after the previous block."""
        return max(round(self._wall(), 3), round(after.time_unix + 0.001, 3))

    def _context(self, mode: Mode, block: Block) -> AnteContext:
        c = self.config
        return AnteContext(
            mode=mode,
            chain_id=c.chain_id,
            block_height=block.height,
            block_time_ns=block_time_ns(block),
            min_gas_price=Decimal(c.min_gas_price_upokt),
            unordered_enabled=c.unordered_transactions,
            max_unordered_ttl_seconds=c.max_unordered_ttl_seconds,
            max_gas=c.max_gas_per_tx,
        )

    async def _inputs(self, tx: DecodedTx) -> AnteInputs:
        signers = tx.signers
        payer = tx.auth_info.fee.payer or (signers[0] if signers else "")
        accounts = await self.accounts.get_many([*signers, payer] if payer else signers)
        nonces = [(s, tx.timeout_unix_nanos) for s in signers] if tx.body.unordered else []
        return AnteInputs(
            accounts=accounts,
            fee_payer_balance=await self.accounts.balance(payer) if payer else 0,
            used_nonces=await self.accounts.used_nonces(nonces),
        )

    # --- CheckTx ---------------------------------------------------------------------------

    async def check_tx(self, raw: bytes) -> CheckResult:
        """CometBFT CheckTx: decode, ante, into the mempool. Raises MempoolError for a tx the
        node already has (CometBFT's cache), before any check."""
        try:
            tx = decode_tx(raw)
        except TxDecodeError as err:
            e = sdk_error(2, str(err))
            return CheckResult(self.store.hash_of(raw), 2, e.codespace, e.log)
        async with self._lock:
            if await self.store.seen(tx.hash):
                raise MempoolError("tx already exists in cache")
            latest = await self.chain.latest_block()
            try:
                effects = run_ante(tx, self._context(Mode.CHECK, latest), await self._inputs(tx))
            except TxError as err:
                return CheckResult(
                    tx.hash, err.code, err.codespace, err.log, tx.gas_limit, err.gas_used
                )
            await self.accounts.apply(effects)
            await self.store.add_pending(_pending(tx, effects))
        return CheckResult(tx.hash, 0, "", "", tx.gas_limit, effects.gas_used)

    # --- Simulate --------------------------------------------------------------------------

    async def simulate(self, raw: bytes) -> SimulateResult:
        """The SDK's Simulate: ante in simulate mode and the messages on a throwaway state at
        the last committed height; raises SimulationError with the SDK's text."""
        try:
            tx = decode_tx(raw)
        except TxDecodeError as err:
            raise SimulationError(sdk_error(2, str(err)).log + _gas_suffix(0, 0)) from None
        wanted = tx.gas_limit
        latest = await self.chain.latest_block()
        try:
            effects = run_ante(tx, self._context(Mode.SIMULATE, latest), await self._inputs(tx))
        except TxError as err:
            raise SimulationError(err.log + _gas_suffix(wanted, err.gas_used)) from None
        used = effects.gas_used + execution_gas(tx)
        view = StateView(self._redis, self.chain.keys)
        view.add_balance(effects.fee_payer, -effects.fee_upokt)
        ctx = BlockContext(self.chain.config, latest.height, self.chain.block_hash)
        events = _ante_events(tx, effects)
        for index, msg in enumerate(tx.msgs):
            try:
                sim_event = await execute_msg(ctx, view, msg)
            except TxRejectedError as err:
                log = err.log_at(index)
                raise SimulationError(log + _gas_suffix(wanted, used)) from None
            events.append(message_event(tx.type_urls[index], msg.supplier_operator_address, index))
            encoded = encode_msg_event(sim_event, index)
            if encoded is not None:
                events.append(encoded)
        return SimulateResult(wanted, used, events, _msg_responses(tx))

    # --- blocks ----------------------------------------------------------------------------

    async def produce_block(self) -> Block:
        """DeliverTx of every pending tx, the simulator's EndBlockers, commit, records."""
        async with self._lock:
            latest = await self.chain.latest_block()
            self._next_time = self._tick(latest)
            time_ns = round(self._next_time * 1000) * 1_000_000
            pending = await self.store.pending()
            results: dict[str, TxResultDoc] = {}
            executed: list[tuple[PendingTx, DecodedTx]] = []
            for entry in pending:
                tx = decode_tx(entry.raw)
                early = await self._deliver_ante(tx, entry, time_ns)
                if early is not None:
                    results[tx.hash] = early
                    continue
                await self.chain.enqueue_tx(entry.raw)
                executed.append((entry, tx))
            block = await self.chain.produce_block()
            for entry, tx in executed:
                results[tx.hash] = await self._deliver_result(tx, entry)
            finalize = await self._finalize_events(block)
            await self.store.commit_block(
                block.height, block_time_ns(block), pending, results, finalize
            )
            await self.accounts.prune_nonces(block_time_ns(block))
        return block

    async def _deliver_ante(
        self, tx: DecodedTx, entry: PendingTx, time_ns: int
    ) -> TxResultDoc | None:
        """What DeliverTx's ante would refuse now that CheckTx passed: a deadline the new
        block's time has passed (sdk 42, fee refunded) or too little gas for the messages
        (sdk 11, fee kept, as the SDK charges the gas wanted)."""
        timeout = tx.timeout_unix_nanos
        if timeout and timeout < time_ns:
            if entry.fee_upokt:
                await self.accounts.refund(entry.fee_payer, entry.fee_upokt)
            err = sdk_error(42, f"block time: {time_ns}, timeout timestamp: {timeout}")
            return TxResultDoc.failure(entry, err.codespace, err.code, err.log, entry.ante_gas)
        total = entry.ante_gas + execution_gas(tx)
        if total > tx.gas_limit:
            err = sdk_error(
                11,
                f"out of gas in location: message execution; gasWanted: {tx.gas_limit}, "
                f"gasUsed: {total}",
            )
            return TxResultDoc.failure(entry, err.codespace, err.code, err.log, total)
        return None

    async def _deliver_result(self, tx: DecodedTx, entry: PendingTx) -> TxResultDoc:
        record = await self.chain.tx_result(tx.hash)
        used = entry.ante_gas + execution_gas(tx)
        events = [AbciEvent.from_json(e) for e in entry.ante_events]
        if record is None:  # cannot happen for a tx the block took; reported as a node would
            log = deliver_log(0, "Internal", "tx missing from the simulated block")
            return TxResultDoc.failure(entry, "undefined", 1, log, used, events)
        if record.code != 0:
            # The simulator reports node-like results itself: ValidateBasic codes, or code 1 /
            # "undefined" with poktroll's handler text (chain/sim/errors.py TxRejectedError).
            return TxResultDoc.failure(
                entry, record.codespace or "undefined", record.code, record.log, used, events
            )
        msg_events = list(record.events)
        for index, msg in enumerate(tx.msgs):
            events.append(message_event(tx.type_urls[index], msg.supplier_operator_address, index))
            if index < len(msg_events):
                encoded = encode_msg_event(msg_events[index], index)
                if encoded is not None:
                    events.append(encoded)
        data = TxMsgData(msg_responses=_msg_responses(tx)).SerializeToString()
        return TxResultDoc.success(entry, used, events, data)

    async def _finalize_events(self, block: Block) -> list[AbciEvent]:
        sim_events = await self.chain.events(block.height, block.height)
        ctx = EventContext()
        claims: dict[tuple[str, str], Claim] = {}
        stakes: dict[str, int] = {}
        for e in sim_events:
            a = e.attributes
            if e.type == "EventProofValidityChecked":
                key = (a["supplier_operator_address"], a["session_id"])
                claim = await self.chain.get_claim(*key)
                if claim is not None:
                    claims[key] = claim
            elif e.type == "EventSupplierSlashed":
                supplier = a["supplier_operator_address"]
                stakes[supplier] = await self.chain.supplier_stake(supplier)
        ctx.claims, ctx.supplier_stakes = claims, stakes
        return encode_block_events(sim_events, ctx)


def _ante_events(tx: DecodedTx, effects: AnteEffects) -> list[AbciEvent]:
    infos = tx.auth_info.signer_infos
    return tx_events(
        fee_upokt=effects.fee_upokt,
        fee_payer=effects.fee_payer,
        signers_sequences=[(s, infos[i].sequence) for i, s in enumerate(tx.signers)],
        signatures=list(tx.tx_raw.signatures),
    )


def _pending(tx: DecodedTx, effects: AnteEffects) -> PendingTx:
    return PendingTx(
        raw=tx.raw,
        fee_payer=effects.fee_payer,
        fee_upokt=effects.fee_upokt,
        ante_gas=effects.gas_used,
        gas_wanted=tx.gas_limit,
        ante_events=[e.to_json() for e in _ante_events(tx, effects)],
    )


def encode_json(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
