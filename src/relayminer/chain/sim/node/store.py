"""The node's records in Redis: pending txs, the tx cache, executed tx results, block tx lists.

Keys (``{base}:sim:node:…``, names in :class:`~relayminer.chain.sim.node.accounts.NodeKeys`):

=============== ====== ==========================================================================
key             type   content
=============== ====== ==========================================================================
``…:mempool``   list   JSON :class:`PendingTx` of every tx that passed CheckTx, in arrival order
``…:seen``      set    hashes of every tx that passed CheckTx (CometBFT's cache: "tx already
                       exists in cache")
``…:txs``       hash   tx hash → JSON :class:`TxResultDoc` (height, index, code, log, gas,
                       events, data, tx bytes)
``…:blocks``    hash   height → JSON ``{"txs": [hash...], "time_ns", "events": [...]}``
                       (``events``: the block's ``finalize_block_events``)
=============== ====== ==========================================================================
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from relayminer.chain.sim.node.accounts import NodeKeys
from relayminer.chain.sim.node.events import AbciEvent

__all__ = ["BlockDoc", "NodeStore", "PendingTx", "TxResultDoc"]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True, slots=True)
class PendingTx:
    """A tx accepted by CheckTx, with what its ante decided (fee, gas, events)."""

    raw: bytes
    fee_payer: str
    fee_upokt: int
    ante_gas: int
    gas_wanted: int
    ante_events: list[dict[str, Any]]

    def encode(self) -> bytes:
        doc = {
            "tx": _b64(self.raw),
            "fee_payer": self.fee_payer,
            "fee_upokt": self.fee_upokt,
            "ante_gas": self.ante_gas,
            "gas_wanted": self.gas_wanted,
            "ante_events": self.ante_events,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> PendingTx:
        doc = json.loads(raw)
        return cls(
            base64.b64decode(doc["tx"]),
            str(doc["fee_payer"]),
            int(doc["fee_upokt"]),
            int(doc["ante_gas"]),
            int(doc["gas_wanted"]),
            list(doc["ante_events"]),
        )


@dataclass(slots=True)
class TxResultDoc:
    """An executed tx: CometBFT's ``ExecTxResult`` plus where it landed."""

    raw: bytes
    code: int
    codespace: str
    log: str
    gas_wanted: int
    gas_used: int
    events: list[AbciEvent] = field(default_factory=list)
    data: bytes = b""
    height: int = 0
    index: int = 0

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.raw).hexdigest().upper()

    @classmethod
    def failure(
        cls,
        entry: PendingTx,
        codespace: str,
        code: int,
        log: str,
        gas_used: int,
        events: Sequence[AbciEvent] = (),
    ) -> TxResultDoc:
        return cls(entry.raw, code, codespace, log, entry.gas_wanted, gas_used, list(events))

    @classmethod
    def success(
        cls, entry: PendingTx, gas_used: int, events: Sequence[AbciEvent], data: bytes
    ) -> TxResultDoc:
        return cls(entry.raw, 0, "", "", entry.gas_wanted, gas_used, list(events), data)

    def encode(self) -> bytes:
        doc = {
            "tx": _b64(self.raw),
            "code": self.code,
            "codespace": self.codespace,
            "log": self.log,
            "gas_wanted": self.gas_wanted,
            "gas_used": self.gas_used,
            "events": [e.to_json() for e in self.events],
            "data": _b64(self.data),
            "height": self.height,
            "index": self.index,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> TxResultDoc:
        doc = json.loads(raw)
        return cls(
            base64.b64decode(doc["tx"]),
            int(doc["code"]),
            str(doc["codespace"]),
            str(doc["log"]),
            int(doc["gas_wanted"]),
            int(doc["gas_used"]),
            [AbciEvent.from_json(e) for e in doc["events"]],
            base64.b64decode(doc["data"]),
            int(doc["height"]),
            int(doc["index"]),
        )


@dataclass(frozen=True, slots=True)
class BlockDoc:
    height: int
    tx_hashes: list[str]
    time_ns: int
    events: list[AbciEvent]


class NodeStore:
    def __init__(self, redis: Redis, keys: NodeKeys) -> None:
        self._redis = redis
        self.keys = keys

    @staticmethod
    def hash_of(raw: bytes) -> str:
        return hashlib.sha256(raw).hexdigest().upper()

    async def seen(self, tx_hash: str) -> bool:
        return bool(await self._redis.sismember(self.keys.seen, tx_hash))

    async def add_pending(self, entry: PendingTx) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self.keys.mempool, entry.encode())
            pipe.sadd(self.keys.seen, self.hash_of(entry.raw))
            await pipe.execute()

    async def pending(self) -> list[PendingTx]:
        return [PendingTx.decode(r) for r in await self._redis.lrange(self.keys.mempool, 0, -1)]

    async def mempool_size(self) -> int:
        return int(await self._redis.llen(self.keys.mempool))

    async def commit_block(
        self,
        height: int,
        time_ns: int,
        pending: Sequence[PendingTx],
        results: Mapping[str, TxResultDoc],
        events: Sequence[AbciEvent],
    ) -> None:
        """Record block ``height``: its txs (in mempool order) and their results, its
        finalize-block events; remove the executed txs from the mempool. One MULTI."""
        hashes = [self.hash_of(p.raw) for p in pending]
        doc = {"txs": hashes, "time_ns": time_ns, "events": [e.to_json() for e in events]}
        async with self._redis.pipeline(transaction=True) as pipe:
            for index, tx_hash in enumerate(hashes):
                result = results[tx_hash]
                result.height, result.index = height, index
                pipe.hset(self.keys.txs, tx_hash, result.encode())
            pipe.hset(self.keys.blocks, str(height), json.dumps(doc, separators=(",", ":")))
            if pending:
                pipe.ltrim(self.keys.mempool, len(pending), -1)
            await pipe.execute()

    async def tx(self, tx_hash: str) -> TxResultDoc | None:
        raw = await self._redis.hget(self.keys.txs, tx_hash.upper())
        return None if raw is None else TxResultDoc.decode(raw)

    async def block(self, height: int) -> BlockDoc:
        """The node's record of a committed block (an empty record for genesis)."""
        raw = await self._redis.hget(self.keys.blocks, str(height))
        if raw is None:
            return BlockDoc(height, [], 0, [])
        doc = json.loads(raw)
        return BlockDoc(
            height,
            [str(h) for h in doc["txs"]],
            int(doc["time_ns"]),
            [AbciEvent.from_json(e) for e in doc["events"]],
        )

    async def block_txs(self, height: int) -> list[TxResultDoc]:
        hashes = (await self.block(height)).tx_hashes
        if not hashes:
            return []
        raws = await self._redis.hmget(self.keys.txs, hashes)
        return [TxResultDoc.decode(r) for r in raws if r is not None]

    async def all_txs(self) -> list[TxResultDoc]:
        """Every executed tx, oldest first (GetTxsEvent scans them: a localnet is small)."""
        docs = [TxResultDoc.decode(v) for v in (await self._redis.hgetall(self.keys.txs)).values()]
        docs.sort(key=lambda d: (d.height, d.index))
        return docs
