"""The inclusion reconciler: a claim or proof the mempool accepted may still never land.

Every pass it compares the rebroadcast records (:mod:`relayminer.lifecycle.rebroadcast`) with
the supplier's claims on chain: an included claim (or a VALIDATED proof) is done; a missing
one is resent from its stored message, at most ``max_rebroadcasts`` times and only while its
window leaves ``rebroadcast_safety_blocks`` of slack; once the window is over it is given up.
A claim found on chain for a session marked ``claim_tx_error`` heals the session back into the
proof flow (the Go miner never does this).
"""

from __future__ import annotations

import logging

from relayminer import metrics
from relayminer.chain.base import ChainUnavailableError, Msg
from relayminer.chain.rejections import TxPhase
from relayminer.lifecycle.config import PassReport
from relayminer.lifecycle.context import SupplierContext
from relayminer.lifecycle.rebroadcast import RebroadcastEntry
from relayminer.proto.poktroll_pb2 import VALIDATED, MsgCreateClaim, MsgSubmitProof
from relayminer.sessions.model import SessionState

__all__ = ["InclusionReconciler"]

log = logging.getLogger(__name__)


class InclusionReconciler:
    def __init__(self, ctx: SupplierContext) -> None:
        self.ctx = ctx

    async def run(self, height: int, report: PassReport) -> None:
        ctx = self.ctx
        claims_on_chain: dict[str, int] | None = None
        for phase in TxPhase:
            for end_height in await ctx.rebroadcasts.groups(phase.value):
                entries = await ctx.rebroadcasts.entries(phase.value, end_height)
                if not entries:
                    continue
                if claims_on_chain is None:
                    try:
                        claims_on_chain = {
                            c.session_header.session_id: c.proof_validation_status
                            for c in await ctx.chain.claims(ctx.supplier)
                        }
                    except ChainUnavailableError:
                        claims_on_chain = None
                windows = await ctx.windows(end_height, height)
                close = windows.claim_close if phase is TxPhase.CLAIM else windows.proof_close
                for entry in entries.values():
                    await self._one(
                        phase, end_height, entry, claims_on_chain, close, height, report
                    )

    async def _one(
        self,
        phase: TxPhase,
        end_height: int,
        entry: RebroadcastEntry,
        on_chain: dict[str, int] | None,
        close: int,
        height: int,
        report: PassReport,
    ) -> None:
        ctx = self.ctx
        sid = entry.session_id
        if on_chain is not None:
            status = on_chain.get(sid)
            included = status is not None if phase is TxPhase.CLAIM else status == VALIDATED
            gone = phase is TxPhase.PROOF and status is None  # settled, expired, never claimed
            if included or gone:
                if included and phase is TxPhase.CLAIM:
                    await self._heal_claim(sid, entry)
                await ctx.rebroadcasts.delete(phase.value, end_height, sid)
                return
        if height >= close:  # missing and the window is over
            log.warning(
                "never included",
                extra={"supplier": ctx.supplier, "phase": phase.value, "session_id": sid},
            )
            await ctx.rebroadcasts.delete(phase.value, end_height, sid)
            return
        if (
            entry.resends < ctx.config.max_rebroadcasts
            and height >= entry.resend_threshold(close)
            and height < close - ctx.config.rebroadcast_safety_blocks
        ):
            msg: Msg = MsgCreateClaim() if phase is TxPhase.CLAIM else MsgSubmitProof()
            msg.ParseFromString(entry.message)
            try:
                result = await ctx.chain.broadcast([msg])
            except ChainUnavailableError as err:
                log.warning("resend failed", extra={"session_id": sid, "error": str(err)})
                return
            entry.resends += 1
            entry.tx_hash = result.tx_hash
            await ctx.rebroadcasts.put(phase.value, end_height, entry)
            metrics.REBROADCASTS.labels(supplier=ctx.supplier, phase=phase.value).inc()
            report.resent.append(sid)
            log.info(
                "resent",
                extra={
                    "supplier": ctx.supplier,
                    "phase": phase.value,
                    "session_id": sid,
                    "ok": result.ok,
                    "reason": result.reason.value,
                },
            )

    async def _heal_claim(self, sid: str, entry: RebroadcastEntry) -> None:
        """A claim found on chain for a session we marked ``claim_tx_error`` re-enters the
        proof flow."""
        snapshot = await self.ctx.store.get(sid)
        if snapshot is None or snapshot.state is not SessionState.CLAIM_TX_ERROR:
            return
        msg = MsgCreateClaim()
        msg.ParseFromString(entry.message)
        await self.ctx.coordinator.on_session_claimed(sid, msg.root_hash, entry.tx_hash)
        log.info("claim healed by the reconciler", extra={"session_id": sid})
