"""Operator safety for ``chain.type: pocket``: gauges and WARNINGs a supplier operator needs.

A miner that cannot pay fees, or that follows a stalled node, misses claims and proofs
silently: the relays were served, the revenue is lost, a missed proof is slashed. The miner
runs :meth:`NodeHealth.run` beside its pipelines (the chain's *driver*); every round it sets

- ``ha_miner_chain_balance_upokt{address}``: each supplier's liquid balance, with a WARNING
  when it is below the estimated fees of the next window (:meth:`NodeHealth.window_fee`);
- ``ha_miner_chain_block_age_seconds``: now minus the header time of the latest block seen,
  with a WARNING above ``stale_blocks`` block times (the node stalled or fell behind);
- ``ha_miner_chain_last_query_age_seconds``: time since the node last answered a gRPC query.

A warning is logged when a condition starts and again every ``repeat_seconds`` while it
lasts; recovery is logged at INFO. A round that cannot reach the node leaves the gauges as
they were (the ages keep growing on the next round that can compute them) and never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from relayminer import metrics
from relayminer.chain.base import ChainUnavailableError
from relayminer.chain.pocket.broadcaster import compute_fee, gas_limit_for
from relayminer.chain.pocket.chain import PocketChain
from relayminer.errors import RelayMinerError

__all__ = ["DEFAULT_TX_GAS", "HealthReport", "NodeHealth"]

log = logging.getLogger(__name__)

#: gas assumed for a claim/proof tx before the first one was simulated (a typical proof tx
#: simulates to ~150k gas on poktroll; rounded up)
DEFAULT_TX_GAS = 200_000
#: txs a supplier sends per window: the claims of a window in one tx, the proofs in another
TXS_PER_WINDOW = 2


@dataclass
class HealthReport:
    """One round's readings (None: not known this round)."""

    block_age_seconds: float | None = None
    last_query_age_seconds: float | None = None
    balances: dict[str, int] = field(default_factory=dict)
    low_balances: list[str] = field(default_factory=list)
    stale: bool = False


class NodeHealth:
    def __init__(
        self,
        chain: PocketChain,
        suppliers: Sequence[str],
        *,
        block_time_seconds: float,
        stale_blocks: float = 3.0,
        repeat_seconds: float = 300.0,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.chain = chain
        self.suppliers = list(suppliers)
        self.block_time_seconds = block_time_seconds
        self.stale_after_seconds = stale_blocks * block_time_seconds
        self.repeat_seconds = repeat_seconds
        self._wall = wall_clock
        self._monotonic = monotonic
        self._warned: dict[str, float] = {}  # condition -> monotonic time of the last warning

    @property
    def interval_seconds(self) -> float:
        """One round per block time, at least every 30 s and at most every second."""
        return min(max(self.block_time_seconds, 1.0), 30.0)

    async def window_fee(self, supplier: str) -> int:
        """Estimated uPOKT the supplier pays in the next window: :data:`TXS_PER_WINDOW` txs
        at its last fee (or :data:`DEFAULT_TX_GAS` priced by the fee policy) plus the proof
        submission fee."""
        broadcaster = self.chain.broadcaster
        fee = broadcaster.last_fee_upokt.get(supplier)
        if fee is None:
            policy = broadcaster.fees
            gas = policy.fixed_gas_limit or gas_limit_for(DEFAULT_TX_GAS, policy.gas_adjustment)
            fee = compute_fee(gas, policy.gas_price_upokt, policy.max_fee_upokt)
        proof_fee = (await self.chain.proof_params()).proof_submission_fee_upokt
        return TXS_PER_WINDOW * fee + proof_fee

    def _warn(self, condition: str, message: str, **extra: object) -> None:
        now = self._monotonic()
        last = self._warned.get(condition)
        if last is None or now - last >= self.repeat_seconds:
            self._warned[condition] = now
            log.warning(message, extra=extra)

    def _clear(self, condition: str, message: str, **extra: object) -> None:
        if self._warned.pop(condition, None) is not None:
            log.info(message, extra=extra)

    async def check(self) -> HealthReport:
        """One round: update the gauges, warn or clear. Never raises for an unreachable node."""
        report = HealthReport()
        with contextlib.suppress(ChainUnavailableError):
            await self.chain.latest_block()
        block = self.chain.last_seen_block
        if block is not None:
            report.block_age_seconds = max(0.0, self._wall() - block.time_unix)
            metrics.CHAIN_BLOCK_AGE.set(report.block_age_seconds)
            report.stale = report.block_age_seconds > self.stale_after_seconds
            if report.stale:
                self._warn(
                    "stale",
                    "the node's latest block is old: it stalled or fell behind; no claim or "
                    "proof lands until it moves",
                    height=block.height,
                    block_age_seconds=round(report.block_age_seconds, 1),
                )
            else:
                self._clear("stale", "the node produces blocks again", height=block.height)
        for supplier in self.suppliers:
            try:
                balance = await self.chain.queries.balance(supplier)
                needed = await self.window_fee(supplier)
            except (ChainUnavailableError, RelayMinerError):
                continue
            report.balances[supplier] = balance
            metrics.CHAIN_BALANCE.labels(address=supplier).set(balance)
            condition = f"balance:{supplier}"
            if balance < needed:
                report.low_balances.append(supplier)
                self._warn(
                    condition,
                    "supplier balance below the next window's estimated fees: fund the "
                    "operator account or claims and proofs will fail",
                    supplier=supplier,
                    balance_upokt=balance,
                    needed_upokt=needed,
                )
            else:
                self._clear(condition, "supplier balance covers the fees again", supplier=supplier)
        last = self.chain.queries.client.last_success
        if last is not None:
            report.last_query_age_seconds = max(0.0, self._monotonic() - last)
            metrics.CHAIN_LAST_QUERY_AGE.set(report.last_query_age_seconds)
        return report

    async def run(self, stop: asyncio.Event) -> None:
        """:meth:`check` every :attr:`interval_seconds` until ``stop`` is set."""
        while not stop.is_set():
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_seconds)
