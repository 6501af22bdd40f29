"""x/auth and x/bank state of the localnet in Redis: accounts, sequences, public keys, balances,
unordered-tx nonces.

Keys (under ``{base}:sim:node``, next to the simulated chain's ``{base}:sim:chain``):

=============================== ====== ====================================================
key                             type   content
=============================== ====== ====================================================
``…:accounts``                  hash   address → JSON ``{"number", "sequence", "pub_key"}``
                                       (``pub_key``: hex of the 33-byte key, "" until the
                                       account's first tx)
``…:next_account_number``       string the next account number to hand out
``…:nonces``                    zset   ``"<address>/<timeout unix nanos>"`` of unordered txs,
                                       score = timeout seconds; pruned once blocks pass them
=============================== ====== ====================================================

Balances are the simulated chain's (``{base}:sim:chain:balances``, uPOKT): one ledger, so fees
paid here and rewards or proof fees booked by the simulator add up. Writes happen under the
node's lock (one process serves a localnet), each batch in one MULTI.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from redis.asyncio import Redis

from relayminer.chain.sim.node.ante import AccountState, AnteEffects
from relayminer.chain.sim.state import SimChainKeys
from relayminer.keys import KeyBuilder

__all__ = ["AccountStore", "NodeKeys"]


class NodeKeys:
    """Names of the node's own Redis keys (see this module and ``store.py``)."""

    def __init__(self, keys: KeyBuilder | None = None) -> None:
        kb = keys if keys is not None else KeyBuilder()
        self.prefix = f"{kb.ns.base_prefix}:sim:node"
        p = self.prefix
        self.genesis = f"{p}:genesis"
        self.accounts = f"{p}:accounts"
        self.next_account_number = f"{p}:next_account_number"
        self.nonces = f"{p}:nonces"
        self.mempool = f"{p}:mempool"
        self.seen = f"{p}:seen"
        self.txs = f"{p}:txs"
        self.blocks = f"{p}:blocks"


def _encode(account: AccountState) -> bytes:
    doc = {
        "number": account.number,
        "sequence": account.sequence,
        "pub_key": account.pubkey.hex() if account.pubkey else "",
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _decode(address: str, raw: bytes | str) -> AccountState:
    doc = json.loads(raw)
    key = str(doc.get("pub_key", ""))
    return AccountState(
        address, int(doc["number"]), int(doc["sequence"]), bytes.fromhex(key) if key else None
    )


class AccountStore:
    def __init__(self, redis: Redis, keys: NodeKeys, chain_keys: SimChainKeys) -> None:
        self._redis = redis
        self.keys = keys
        self._balances = chain_keys.balances

    async def create_genesis_accounts(self, addresses: Sequence[str]) -> bool:
        """Create the genesis accounts (numbers 0..n-1) once; False when they already exist."""
        created = await self._redis.set(self.keys.genesis, b"1", nx=True)
        if not created:
            return False
        async with self._redis.pipeline(transaction=True) as pipe:
            for number, address in enumerate(addresses):
                pipe.hsetnx(
                    self.keys.accounts, address, _encode(AccountState(address, number, 0, None))
                )
            pipe.set(self.keys.next_account_number, len(addresses))
            await pipe.execute()
        return True

    async def get(self, address: str) -> AccountState | None:
        raw = await self._redis.hget(self.keys.accounts, address)
        return None if raw is None else _decode(address, raw)

    async def get_many(self, addresses: Iterable[str]) -> dict[str, AccountState | None]:
        wanted = list(dict.fromkeys(addresses))
        if not wanted:
            return {}
        raws = await self._redis.hmget(self.keys.accounts, wanted)
        return {
            a: None if raw is None else _decode(a, raw) for a, raw in zip(wanted, raws, strict=True)
        }

    async def balance(self, address: str) -> int:
        raw = await self._redis.hget(self._balances, address)
        return 0 if raw is None else int(raw)

    async def used_nonces(self, nonces: Iterable[tuple[str, int]]) -> frozenset[tuple[str, int]]:
        wanted = list(nonces)
        if not wanted:
            return frozenset()
        scores = await self._redis.zmscore(self.keys.nonces, [f"{a}/{ns}" for a, ns in wanted])
        return frozenset(n for n, s in zip(wanted, scores, strict=True) if s is not None)

    async def apply(self, effects: AnteEffects) -> None:
        """Write the ante's state changes (fee, public keys, sequences, nonces) atomically."""
        touched = {*effects.pubkeys, *effects.sequence_increments}
        accounts = await self.get_many(touched)
        async with self._redis.pipeline(transaction=True) as pipe:
            if effects.fee_upokt:
                pipe.hincrby(self._balances, effects.fee_payer, -effects.fee_upokt)
            for address, account in accounts.items():
                if account is None:
                    continue
                pubkey = account.pubkey or effects.pubkeys.get(address)
                sequence = account.sequence + effects.sequence_increments.count(address)
                updated = AccountState(address, account.number, sequence, pubkey)
                pipe.hset(self.keys.accounts, address, _encode(updated))
            for address, timeout_ns in effects.nonces:
                pipe.zadd(self.keys.nonces, {f"{address}/{timeout_ns}": timeout_ns / 1e9})
            await pipe.execute()

    async def prune_nonces(self, block_time_ns: int) -> None:
        """Forget nonces whose timeout the chain has passed (they can no longer be replayed:
        the timeout check refuses them first)."""
        # one second of slack: float scores must never drop a nonce that is still replayable
        cutoff = block_time_ns / 1e9 - 1.0
        await self._redis.zremrangebyscore(self.keys.nonces, "-inf", f"({cutoff}")

    async def refund(self, address: str, amount: int) -> None:
        """Give back a fee taken at CheckTx for a tx whose DeliverTx ante failed."""
        if amount:
            await self._redis.hincrby(self._balances, address, amount)
