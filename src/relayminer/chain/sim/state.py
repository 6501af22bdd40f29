"""Redis layout of the simulated chain and a copy-on-write view of its state.

Every key lives under ``{base}:sim:chain`` (``base`` = the :class:`~relayminer.keys.KeyBuilder`
base prefix, ``ha`` by default), so several processes can share one chain:

============================== ======== ======================================================
key                            type     content
============================== ======== ======================================================
``…:height``                   string   latest committed height (absent: not initialised)
``…:config``                   string   JSON config snapshot (``SimChainConfig.to_json``)
``…:blocks``                   hash     height → JSON ``{"hash": hex, "time": unix, "txs": n}``
``…:events``                   hash     height → JSON list of events of that block
``…:mempool``                  list     encoded txs waiting for the next block (FIFO)
``…:txs``                      hash     tx hash → JSON ``{"height", "code", "log"}`` (executed)
``…:tx_seq``                   string   counter of accepted txs (seeds the drop decision)
``…:drop_next``                string   number of upcoming accepted txs to drop (tests)
``…:claims:{supplier}``        hash     session id → encoded ``pocket.proof.Claim`` (+status)
``…:claim_index:{E}``          set      ``supplier\\nsession id`` of claims whose session ends
                                        at ``E`` (settlement looks them up)
``…:balances``                 hash     address → liquid uPOKT
``…:supplier_stakes``          hash     supplier → staked uPOKT (slashing burns from it)
``…:app_stakes``               hash     application → staked uPOKT (settlement burns from it)
``…:totals``                   hash     counters for the summary (claims settled ...)
``…:producer``                 string   block-producer lease (token, PX expiry)
============================== ======== ======================================================

Only the block producer writes chain state (one MULTI/EXEC per block, see ``simchain.py``);
``broadcast`` only appends to the mempool and moves the two counters.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from google.protobuf.message import DecodeError
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from relayminer.chain.base import ChainEvent, Claim, Msg, MsgCreateClaim, MsgSubmitProof
from relayminer.chain.sim.errors import SimChainStateError
from relayminer.keys import KeyBuilder

__all__ = [
    "TOTAL_FIELDS",
    "BlockRecord",
    "SimChainKeys",
    "StateView",
    "TxRecord",
    "as_bytes",
    "decode_claim",
    "decode_events",
    "decode_tx",
    "encode_events",
    "encode_tx",
    "tx_hash",
]

MSG_TYPES: Final[dict[str, type[MsgCreateClaim] | type[MsgSubmitProof]]] = {
    "/pocket.proof.MsgCreateClaim": MsgCreateClaim,
    "/pocket.proof.MsgSubmitProof": MsgSubmitProof,
}

TOTAL_FIELDS: Final = (
    "claims_created",
    "claims_updated",
    "claims_settled",
    "claims_expired",
    "claims_discarded",
    "proofs_submitted",
    "proofs_validated",
    "proofs_invalid",
    "settled_upokt",
    "minted_upokt",
    "supplier_rewards_upokt",
    "slashed_upokt",
    "txs_accepted",
    "txs_dropped",
    "txs_rejected",
    "txs_executed",
    "txs_failed",
)


class SimChainKeys:
    """Names of the simulated chain's Redis keys (module docstring)."""

    def __init__(self, keys: KeyBuilder | None = None) -> None:
        kb = keys if keys is not None else KeyBuilder()
        self.prefix = f"{kb.ns.base_prefix}:sim:chain"
        if kb.hash_tagged:  # Redis Cluster: the whole chain in one slot (its MULTIs span keys)
            self.prefix = f"{{{self.prefix}}}"
        p = self.prefix
        self.height = f"{p}:height"
        self.config = f"{p}:config"
        self.blocks = f"{p}:blocks"
        self.events = f"{p}:events"
        self.mempool = f"{p}:mempool"
        self.txs = f"{p}:txs"
        self.tx_seq = f"{p}:tx_seq"
        self.drop_next = f"{p}:drop_next"
        self.balances = f"{p}:balances"
        self.supplier_stakes = f"{p}:supplier_stakes"
        self.app_stakes = f"{p}:app_stakes"
        self.totals = f"{p}:totals"
        self.producer = f"{p}:producer"

    def claims(self, supplier: str) -> str:
        return f"{self.prefix}:claims:{supplier}"

    def claim_index(self, session_end_height: int) -> str:
        return f"{self.prefix}:claim_index:{session_end_height}"


# --- blocks, txs and events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockRecord:
    height: int
    hash: bytes
    time_unix: float
    num_txs: int = 0

    def encode(self) -> bytes:
        doc = {"hash": self.hash.hex(), "time": self.time_unix, "txs": self.num_txs}
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, height: int, raw: bytes) -> BlockRecord:
        try:
            doc = json.loads(raw)
            return cls(height, bytes.fromhex(doc["hash"]), float(doc["time"]), int(doc["txs"]))
        except (ValueError, KeyError, TypeError) as err:
            raise SimChainStateError(f"cannot decode block {height}: {err}") from err


@dataclass(frozen=True, slots=True)
class TxRecord:
    """The execution result of a tx included in a block (failed txs included): the Cosmos
    ``code`` and ``codespace`` and the log, as a node's DeliverTx result carries them.

    ``msg_index`` is the index of the message that failed (None when the tx succeeded or could
    not be decoded); ``events`` are the events the tx's messages emitted (empty on failure).
    """

    tx_hash: str
    height: int
    code: int
    log: str
    codespace: str = ""
    msg_index: int | None = None
    events: tuple[ChainEvent, ...] = ()

    def encode(self) -> str:
        doc: dict[str, Any] = {"height": self.height, "code": self.code, "log": self.log}
        if self.codespace:
            doc["codespace"] = self.codespace
        if self.msg_index is not None:
            doc["msg_index"] = self.msg_index
        if self.events:
            doc["events"] = json.loads(encode_events(self.events))
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def decode(cls, tx_hash_hex: str, raw: bytes | str) -> TxRecord:
        doc = json.loads(raw)
        height = int(doc["height"])
        index = doc.get("msg_index")
        return cls(
            tx_hash_hex,
            height,
            int(doc["code"]),
            str(doc["log"]),
            str(doc.get("codespace", "")),
            None if index is None else int(index),
            tuple(decode_events(height, json.dumps(doc.get("events", [])).encode())),
        )


def encode_tx(msgs: Sequence[Msg]) -> bytes:
    """Deterministic tx bytes: canonical JSON list of ``{"type_url", "value": hex}``."""
    items = []
    for msg in msgs:
        type_url = f"/{msg.DESCRIPTOR.full_name}"
        if type_url not in MSG_TYPES:
            raise TypeError(f"unsupported message type {type_url}")
        items.append(
            {"type_url": type_url, "value": msg.SerializeToString(deterministic=True).hex()}
        )
    return json.dumps(items, sort_keys=True, separators=(",", ":")).encode()


def decode_tx(raw: bytes) -> list[Msg]:
    try:
        items = json.loads(raw)
        msgs: list[Msg] = []
        for item in items:
            cls = MSG_TYPES[item["type_url"]]
            msgs.append(cls.FromString(bytes.fromhex(item["value"])))
    except (ValueError, KeyError, TypeError, DecodeError) as err:
        raise SimChainStateError(f"cannot decode tx: {err}") from err
    return msgs


def tx_hash(tx_bytes: bytes) -> str:
    """Uppercase hex SHA-256 of the encoded tx (the same msgs give the same hash)."""
    return hashlib.sha256(tx_bytes).hexdigest().upper()


def encode_events(events: Iterable[ChainEvent]) -> bytes:
    return json.dumps(
        [{"type": e.type, "attributes": e.attributes} for e in events], separators=(",", ":")
    ).encode()


def decode_events(height: int, raw: bytes) -> list[ChainEvent]:
    try:
        docs: list[dict[str, Any]] = json.loads(raw)
        return [
            ChainEvent(height=height, type=str(d["type"]), attributes=dict(d["attributes"]))
            for d in docs
        ]
    except (ValueError, KeyError, TypeError) as err:
        raise SimChainStateError(f"cannot decode events of block {height}: {err}") from err


def decode_claim(raw: bytes) -> Claim:
    try:
        return Claim.FromString(raw)
    except DecodeError as err:
        raise SimChainStateError(f"cannot decode stored claim: {err}") from err


def as_bytes(value: bytes | str) -> bytes:
    """A Redis reply as bytes (clients use ``decode_responses=False``; typing says either)."""
    return value if isinstance(value, bytes) else value.encode()


def _int(raw: bytes | str | None) -> int:
    return 0 if raw is None else int(raw)


# --- copy-on-write view -----------------------------------------------------------------------


@dataclass(slots=True)
class _ClaimWrite:
    claim: Claim | None  # None: deleted
    supplier: str
    session_id: str
    session_end_height: int


@dataclass(slots=True)
class _Staged:
    claims: dict[tuple[str, str], _ClaimWrite] = field(default_factory=dict)
    # (hash key, field) -> delta
    counters: dict[tuple[str, str], int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    # proofs delivered in the block being built (transient: the proof EndBlocker of the same
    # block consumes them, so they are never written to Redis)
    proofs: dict[tuple[str, str], MsgSubmitProof] = field(default_factory=dict)


class StateView:
    """Committed chain state plus staged writes (a block being built, a tx being checked).

    Reads go through the staged writes of this view and its parents, then to Redis. ``child()``
    gives a tx-level view whose writes reach the parent only on ``merge()`` (atomic txs).
    ``queue_writes(pipe)`` puts every staged write of a root view into a MULTI pipeline.
    """

    def __init__(self, redis: Redis, keys: SimChainKeys, parent: StateView | None = None) -> None:
        self._redis = redis
        self.keys = keys
        self._parent = parent
        self._staged = _Staged()

    def child(self) -> StateView:
        return StateView(self._redis, self.keys, self)

    def merge(self) -> None:
        """Apply this view's staged writes to its parent."""
        parent = self._parent
        if parent is None:
            raise RuntimeError("a root view has no parent to merge into")
        parent._staged.claims.update(self._staged.claims)
        for key, delta in self._staged.counters.items():
            parent._staged.counters[key] = parent._staged.counters.get(key, 0) + delta
        for name, delta in self._staged.totals.items():
            parent._staged.totals[name] = parent._staged.totals.get(name, 0) + delta
        for key, proof in self._staged.proofs.items():
            parent._staged.proofs.pop(key, None)  # keep delivery order: re-insert at the end
            parent._staged.proofs[key] = proof
        self._staged = _Staged()

    # --- claims ---------------------------------------------------------------------------

    def _staged_claim(self, supplier: str, session_id: str) -> _ClaimWrite | None:
        view: StateView | None = self
        while view is not None:
            write = view._staged.claims.get((supplier, session_id))
            if write is not None:
                return write
            view = view._parent
        return None

    async def get_claim(self, supplier: str, session_id: str) -> Claim | None:
        write = self._staged_claim(supplier, session_id)
        if write is not None:
            return write.claim
        raw = await self._redis.hget(self.keys.claims(supplier), session_id)
        return None if raw is None else decode_claim(as_bytes(raw))

    def put_claim(self, claim: Claim) -> None:
        h = claim.session_header
        self._staged.claims[(claim.supplier_operator_address, h.session_id)] = _ClaimWrite(
            claim, claim.supplier_operator_address, h.session_id, h.session_end_block_height
        )

    def delete_claim(self, supplier: str, session_id: str, session_end_height: int) -> None:
        self._staged.claims[(supplier, session_id)] = _ClaimWrite(
            None, supplier, session_id, session_end_height
        )

    async def claims_ending_at(self, session_end_height: int) -> list[tuple[str, str]]:
        """(supplier, session id) of every claim whose session ends at the height, sorted."""
        members = await self._redis.smembers(self.keys.claim_index(session_end_height))
        found: set[tuple[str, str]] = set()
        for m in members:
            supplier, _, sid = as_bytes(m).decode().partition("\n")
            found.add((supplier, sid))
        chain: list[StateView] = []
        view: StateView | None = self
        while view is not None:
            chain.append(view)
            view = view._parent
        for v in reversed(chain):  # oldest staging first, newest wins
            for (supplier, sid), write in v._staged.claims.items():
                if write.session_end_height != session_end_height:
                    continue
                if write.claim is None:
                    found.discard((supplier, sid))
                else:
                    found.add((supplier, sid))
        return sorted(found)

    # --- proofs of the block being built ---------------------------------------------------

    def has_pending_proof(self, supplier: str, session_id: str) -> bool:
        view: StateView | None = self
        while view is not None:
            if (supplier, session_id) in view._staged.proofs:
                return True
            view = view._parent
        return False

    def put_proof(self, msg: MsgSubmitProof) -> None:
        key = (msg.supplier_operator_address, msg.session_header.session_id)
        self._staged.proofs.pop(key, None)
        self._staged.proofs[key] = msg

    def take_proofs(self) -> list[MsgSubmitProof]:
        """The proofs staged in this view, in delivery order; removes them (EndBlocker)."""
        proofs = list(self._staged.proofs.values())
        self._staged.proofs.clear()
        return proofs

    # --- counters (balances and stakes) ---------------------------------------------------

    async def _counter(self, key: str, name: str) -> int:
        delta = 0
        view: StateView | None = self
        while view is not None:
            delta += view._staged.counters.get((key, name), 0)
            view = view._parent
        raw = await self._redis.hget(key, name)
        return _int(raw) + delta

    def _add(self, key: str, name: str, delta: int) -> None:
        if delta:
            self._staged.counters[(key, name)] = self._staged.counters.get((key, name), 0) + delta

    async def balance(self, address: str) -> int:
        return await self._counter(self.keys.balances, address)

    def add_balance(self, address: str, delta: int) -> None:
        self._add(self.keys.balances, address, delta)

    async def supplier_stake(self, supplier: str) -> int:
        return await self._counter(self.keys.supplier_stakes, supplier)

    def add_supplier_stake(self, supplier: str, delta: int) -> None:
        self._add(self.keys.supplier_stakes, supplier, delta)

    async def app_stake(self, application: str) -> int:
        return await self._counter(self.keys.app_stakes, application)

    def add_app_stake(self, application: str, delta: int) -> None:
        self._add(self.keys.app_stakes, application, delta)

    def count(self, total: str, delta: int = 1) -> None:
        if total not in TOTAL_FIELDS:
            raise KeyError(total)
        if delta:
            self._staged.totals[total] = self._staged.totals.get(total, 0) + delta

    # --- commit ---------------------------------------------------------------------------

    def queue_writes(self, pipe: Pipeline) -> None:
        """Queue every staged write into ``pipe`` (already in MULTI mode)."""
        if self._parent is not None:
            raise RuntimeError("only a root view is committed")
        for write in self._staged.claims.values():
            member = f"{write.supplier}\n{write.session_id}"
            index = self.keys.claim_index(write.session_end_height)
            if write.claim is None:
                pipe.hdel(self.keys.claims(write.supplier), write.session_id)
                pipe.srem(index, member)
            else:
                pipe.hset(
                    self.keys.claims(write.supplier),
                    write.session_id,
                    write.claim.SerializeToString(deterministic=True),
                )
                pipe.sadd(index, member)
        for (key, name), delta in self._staged.counters.items():
            if delta:
                pipe.hincrby(key, name, delta)
        for name, delta in self._staged.totals.items():
            if delta:
                pipe.hincrby(self.keys.totals, name, delta)
