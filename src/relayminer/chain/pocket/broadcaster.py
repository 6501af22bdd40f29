"""Build, price, sign and broadcast one claim/proof transaction (cosmos.tx.v1beta1.Service).

Steps, as the Go miner (``tx/tx_client.go``): sign with gas 0 and no fee, ``Simulate``; gas limit
= floor(gas_used x ``gas_adjustment``); fee = ceil(gas_limit x ``gas_price``) upokt, capped by
``max_fee_upokt``; re-sign and ``BroadcastTx`` in SYNC mode (code 0 = in the mempool only).

Unordered (default): sequence 0, ``timeout_timestamp`` = latest block header time + ``ttl``
plus a nanosecond offset unique per signer, so two txs built in the same block never share a
timeout (the node rejects the second with sdk 18 "already used timeout"). Ordered: the account
sequence is tracked locally and re-read from the chain after a wrong-sequence rejection.

A Simulate failure (gRPC Unknown carrying the handler's text) becomes a :class:`TxResult` with
code 1 / codespace ``undefined`` and that text, classified like any other rejection. One
exception: Simulate runs the ante's sequence check too, and the gRPC status carries only the
text, so a failure ending in the SDK's registered "incorrect account sequence" (cosmos-sdk
``types/errors/errors.go``, code 32) is reported as ``sdk`` 32: an ordered signer re-reads its
sequence instead of being stuck behind a stale one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from google.protobuf import timestamp_pb2

from relayminer.chain.base import ChainUnavailableError, Msg, TxResult
from relayminer.chain.pocket.grpc_client import GrpcQueryClient, QueryFailedError
from relayminer.chain.pocket.keys import PocketKey
from relayminer.chain.pocket.queries import PocketQueries
from relayminer.chain.pocket.tx import sign_tx, tx_hash
from relayminer.chain.rejections import Rejection
from relayminer.proto import cosmos_tx_service_pb2 as service_pb2

__all__ = ["Broadcaster", "FeePolicy", "compute_fee", "gas_limit_for"]

#: cosmos-sdk ErrWrongSequence's registered description (code 32)
_WRONG_SEQUENCE_TEXT = "incorrect account sequence"
#: the node refuses an unordered timeout further than this past the block time
_MAX_TTL_NS = 10 * 60 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class FeePolicy:
    gas_adjustment: Decimal = Decimal("1.7")
    gas_price_upokt: Decimal = Decimal("0.00001")
    max_fee_upokt: int | None = None
    fixed_gas_limit: int = 0  # > 0 skips simulation


def gas_limit_for(gas_used: int, adjustment: Decimal) -> int:
    """floor(gas_used x adjustment)."""
    return math.floor(Decimal(gas_used) * adjustment)


def compute_fee(gas_limit: int, price: Decimal, cap: int | None) -> int:
    """ceil(gas_limit x price) upokt (rounding down can fail a node's minimum), capped."""
    fee = math.ceil(Decimal(gas_limit) * price)
    return fee if cap is None else min(fee, cap)


class Broadcaster:
    """Signs and sends claim/proof txs for any of the operator keys."""

    def __init__(
        self,
        client: GrpcQueryClient,
        *,
        chain_id: str,
        fees: FeePolicy,
        memo: str = "",
        unordered: bool = True,
        ttl_seconds: float = 120.0,
    ) -> None:
        if not 0 < ttl_seconds * 1e9 < _MAX_TTL_NS:
            raise ValueError("ttl_seconds must be in (0, 600)")
        self.client = client
        self.queries = PocketQueries(client)
        self.chain_id = chain_id
        self.fees = fees
        self.memo = memo
        self.unordered = unordered
        self.ttl_ns = int(ttl_seconds * 1e9)
        #: the fee of each signer's last priced tx (the balance warning's estimate)
        self.last_fee_upokt: dict[str, int] = {}
        self._account_numbers: dict[str, int] = {}
        self._sequences: dict[str, int] = {}
        self._last_timeout_ns: dict[str, int] = {}

    def unique_timeout_ns(self, signer: str, anchor_ns: int) -> int:
        """anchor + ttl, moved past the last timeout given to ``signer`` (one ns at least)."""
        candidate = anchor_ns + self.ttl_ns
        previous = self._last_timeout_ns.get(signer)
        if previous is not None and candidate <= previous:
            candidate = previous + 1
        self._last_timeout_ns[signer] = candidate
        return candidate

    async def _account(self, address: str) -> tuple[int, int]:
        number = self._account_numbers.get(address)
        if number is None or (not self.unordered and address not in self._sequences):
            account = await self.queries.account(address)
            if account is None:
                raise ChainUnavailableError(f"account {address} does not exist on chain")
            number = self._account_numbers[address] = account.account_number
            self._sequences.setdefault(address, account.sequence)
        return number, (0 if self.unordered else self._sequences[address])

    def _sign(
        self,
        key: PocketKey,
        msgs: Sequence[Msg],
        number: int,
        sequence: int,
        gas: int,
        fee: int,
        timeout: timestamp_pb2.Timestamp | None,
    ) -> bytes:
        return sign_tx(
            key,
            msgs,
            chain_id=self.chain_id,
            account_number=number,
            sequence=sequence,
            gas_limit=gas,
            fee_upokt=fee,
            memo=self.memo,
            timeout_timestamp=timeout,
            unordered=self.unordered,
        )

    async def broadcast(self, key: PocketKey, msgs: Sequence[Msg], anchor_ns: int) -> TxResult:
        """One tx holding ``msgs`` signed by ``key``; ``anchor_ns`` = latest block time (ns)."""
        address = key.address()
        number, sequence = await self._account(address)
        timeout = None
        if self.unordered:
            ns = self.unique_timeout_ns(address, anchor_ns)
            timeout = timestamp_pb2.Timestamp(seconds=ns // 10**9, nanos=ns % 10**9)
        gas = self.fees.fixed_gas_limit
        if gas <= 0:
            probe = self._sign(key, msgs, number, sequence, 0, 0, timeout)
            try:
                simulated = await self.client.call(
                    "/cosmos.tx.v1beta1.Service/Simulate",
                    service_pb2.SimulateRequest(tx_bytes=probe),
                    service_pb2.SimulateResponse,
                )
            except QueryFailedError as err:
                if err.code in ("UNKNOWN", "INVALID_ARGUMENT", "FAILED_PRECONDITION"):
                    return self._track(address, sequence, self._simulate_failure(err.details))
                raise
            if simulated is None:
                raise ChainUnavailableError("simulate: the node answered NotFound")
            gas = gas_limit_for(simulated.gas_info.gas_used, self.fees.gas_adjustment)
        fee = compute_fee(gas, self.fees.gas_price_upokt, self.fees.max_fee_upokt)
        self.last_fee_upokt[address] = fee
        raw = self._sign(key, msgs, number, sequence, gas, fee, timeout)
        sent = await self.client.call(
            "/cosmos.tx.v1beta1.Service/BroadcastTx",
            service_pb2.BroadcastTxRequest(tx_bytes=raw, mode=service_pb2.BROADCAST_MODE_SYNC),
            service_pb2.BroadcastTxResponse,
        )
        if sent is None:
            raise ChainUnavailableError("broadcast: the node answered NotFound")
        response = sent.tx_response
        result = TxResult(
            tx_hash=response.txhash or tx_hash(raw),
            code=response.code,
            log=response.raw_log,
            codespace=response.codespace,
        )
        return self._track(address, sequence, result)

    @staticmethod
    def _simulate_failure(details: str) -> TxResult:
        if _WRONG_SEQUENCE_TEXT in details:
            return TxResult(tx_hash="", code=32, log=f"simulate: {details}", codespace="sdk")
        return TxResult(tx_hash="", code=1, log=f"simulate: {details}", codespace="undefined")

    def _track(self, address: str, sequence: int, result: TxResult) -> TxResult:
        """An ordered signer's next sequence after ``result`` (re-read after a mismatch)."""
        if not self.unordered:
            if result.ok:
                self._sequences[address] = sequence + 1
            elif result.reason is Rejection.WRONG_SEQUENCE:
                self._sequences.pop(address, None)  # re-read from the chain next time
        return result

    async def get_tx(self, hash_hex: str) -> service_pb2.GetTxResponse | None:
        """The executed tx (needs the node's tx indexer); None when unknown."""
        return await self.client.call(
            "/cosmos.tx.v1beta1.Service/GetTx",
            service_pb2.GetTxRequest(hash=hash_hex),
            service_pb2.GetTxResponse,
        )
