"""The inclusion reconciler: a claim or proof the mempool accepted may still never count.

Every pass it looks at each rebroadcast record (:mod:`relayminer.lifecycle.rebroadcast`) and
decides on evidence only (``docs/lifecycle.md``, "Inclusion"):

1. the chain's state shows it (the claim exists; the proof is VALIDATED; for a proof, a claim
   already gone was settled or expired): done;
2. its window is over: given up;
3. its tx is in a block (:meth:`Chain.tx_status`, by hash) and executed (code 0): done (the
   state read raced the block);
4. its tx is in a block and **failed at execution** (non-zero code): noticed here, one block
   after it landed, and resent at once while the window leaves ``rebroadcast_safety_blocks``;
   a reason no resend can fix (:data:`_FINAL`) ends the record instead;
5. its tx is in no block: resent only once its inclusion deadline passed
   (``inclusion_deadline_blocks`` after the broadcast); before that it may be on its way, and a
   redundant tx is a fee on a real chain.

Resends of one session end height go out as one tx, at most ``max_rebroadcasts`` per record.
A claim found on chain for a session marked ``claim_tx_error`` heals the session back into the
proof flow (the Go miner never does this).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from relayminer import metrics
from relayminer.chain.base import ChainUnavailableError, Msg, TxResult
from relayminer.chain.rejections import Rejection, TxPhase
from relayminer.lifecycle.config import PassReport
from relayminer.lifecycle.context import SupplierContext, accepted
from relayminer.lifecycle.rebroadcast import RebroadcastEntry
from relayminer.proto.poktroll_pb2 import VALIDATED, MsgCreateClaim, MsgSubmitProof
from relayminer.sessions.model import SessionState

__all__ = ["InclusionReconciler"]

log = logging.getLogger(__name__)

#: failures at execution (or rejections of a resend) that the same message cannot overcome
_FINAL = frozenset(
    {
        Rejection.WINDOW_CLOSED,
        Rejection.INVALID_CONTENT,
        Rejection.CONFIGURATION,
        Rejection.CLAIM_MISSING,
        Rejection.PROOF_NOT_REQUIRED,
    }
)


@dataclass
class _Pass:
    """What one reconciler pass reads once: the supplier's claims, tx results by hash."""

    claims: dict[str, int] | None = None
    claims_read: bool = False
    txs: dict[str, TxResult | None] = field(default_factory=dict)
    #: records of the current group that are settled, dropped in one round trip after it
    finished: list[str] = field(default_factory=list)


class InclusionReconciler:
    def __init__(self, ctx: SupplierContext) -> None:
        self.ctx = ctx
        #: records the last pass looked at (0: it changed nothing)
        self.examined = 0

    async def run(self, height: int, report: PassReport) -> None:
        ctx = self.ctx
        seen = _Pass()
        self.examined = 0
        for phase in TxPhase:
            for end_height in await ctx.rebroadcasts.groups(phase.value):
                entries = await ctx.rebroadcasts.entries(phase.value, end_height)
                if not entries:
                    continue
                self.examined += len(entries)
                if not seen.claims_read:
                    seen.claims = await self._claims_on_chain()
                    seen.claims_read = True
                windows = await ctx.windows(end_height, height)
                close = windows.claim_close if phase is TxPhase.CLAIM else windows.proof_close
                due: list[RebroadcastEntry] = []
                seen.finished = []
                for entry in entries.values():
                    if await self._one(phase, end_height, entry, seen, close, height, report):
                        due.append(entry)
                await ctx.rebroadcasts.delete_many(phase.value, end_height, seen.finished)
                if due:
                    await self._resend(phase, end_height, due, height, report)

    async def _claims_on_chain(self) -> dict[str, int] | None:
        try:
            return {
                c.session_header.session_id: c.proof_validation_status
                for c in await self.ctx.chain.claims(self.ctx.supplier)
            }
        except ChainUnavailableError:
            return None

    async def _executed(self, tx_hash: str, seen: _Pass) -> TxResult | None:
        """The tx's execution result (None: in no block, or the chain cannot say now)."""
        if not tx_hash:
            return None
        if tx_hash not in seen.txs:
            # A chain written before ``tx_status`` joined the protocol: state and deadline only.
            lookup = getattr(self.ctx.chain, "tx_status", None)
            try:
                seen.txs[tx_hash] = None if lookup is None else await lookup(tx_hash)
            except ChainUnavailableError:
                seen.txs[tx_hash] = None
        return seen.txs[tx_hash]

    async def _one(
        self,
        phase: TxPhase,
        end_height: int,
        entry: RebroadcastEntry,
        seen: _Pass,
        close: int,
        height: int,
        report: PassReport,
    ) -> bool:
        """Settle one record from the evidence; True when it is due for a resend."""
        ctx = self.ctx
        sid = entry.session_id
        if seen.claims is not None:
            status = seen.claims.get(sid)
            included = status is not None if phase is TxPhase.CLAIM else status == VALIDATED
            gone = phase is TxPhase.PROOF and status is None  # settled, expired, never claimed
            if included or gone:
                await self._done(phase, entry, included, seen)
                return False
        if height >= close:  # not on chain and the window is over
            log.warning(
                "never included",
                extra={"supplier": ctx.supplier, "phase": phase.value, "session_id": sid},
            )
            seen.finished.append(sid)
            return False
        executed = await self._executed(entry.tx_hash, seen)
        if executed is not None and executed.ok:
            await self._done(phase, entry, True, seen)
            return False
        if executed is not None:  # in a block, failed at execution: changed nothing
            metrics.TXS_FAILED_AT_EXECUTION.labels(supplier=ctx.supplier, phase=phase.value).inc()
            report.failed_at_execution.append(sid)
            log.warning(
                f"{phase.value} failed at execution",
                extra={
                    "supplier": ctx.supplier,
                    "session_id": sid,
                    "tx_hash": entry.tx_hash,
                    "reason": executed.reason.value,
                    "codespace": executed.codespace,
                    "code": executed.code,
                    "log": executed.log,
                },
            )
            if executed.reason in _FINAL or not self._may_resend(entry, close, height):
                await self._give_up(phase, end_height, entry, executed.reason.value)
                return False
            return True
        return entry.resend_due(height, ctx.config.inclusion_deadline_blocks) and (
            self._may_resend(entry, close, height)
        )

    def _may_resend(self, entry: RebroadcastEntry, close: int, height: int) -> bool:
        config = self.ctx.config
        return (
            entry.resends < config.max_rebroadcasts
            and height < close - config.rebroadcast_safety_blocks
        )

    async def _done(
        self, phase: TxPhase, entry: RebroadcastEntry, included: bool, seen: _Pass
    ) -> None:
        # Only a claim never broadcast (no original hash: the record ``not_accepted`` keeps
        # for a ``claim_tx_error`` session's one resend) can heal a session; any other claim
        # record belongs to a session already ``claimed``, and is not read again.
        if included and phase is TxPhase.CLAIM and not entry.original_tx_hash:
            await self._heal_claim(entry.session_id, entry)
        seen.finished.append(entry.session_id)

    async def _give_up(
        self, phase: TxPhase, end_height: int, entry: RebroadcastEntry, reason: str
    ) -> None:
        log.error(
            f"{phase.value} cannot be resent",
            extra={
                "supplier": self.ctx.supplier,
                "session_id": entry.session_id,
                "reason": reason,
                "resends": entry.resends,
            },
        )
        await self.ctx.rebroadcasts.delete(phase.value, end_height, entry.session_id)

    async def _resend(
        self,
        phase: TxPhase,
        end_height: int,
        due: list[RebroadcastEntry],
        height: int,
        report: PassReport,
    ) -> None:
        """One tx for the group; if the chain refuses it, each member alone."""
        ctx = self.ctx
        msgs: dict[str, Msg] = {}
        for entry in due:
            msg: Msg = MsgCreateClaim() if phase is TxPhase.CLAIM else MsgSubmitProof()
            msg.ParseFromString(entry.message)
            msgs[entry.session_id] = msg
        results = await ctx.broadcast_msgs(msgs)
        sent_at = await ctx.height_now(height)
        for entry in due:
            result = results[entry.session_id]
            if isinstance(result, Exception):  # the chain could not be asked: next pass
                log.warning("resend failed", extra={"supplier": ctx.supplier, "error": str(result)})
                continue
            await self._record_resend(phase, end_height, entry, result, sent_at)
            report.resent.append(entry.session_id)

    async def _record_resend(
        self,
        phase: TxPhase,
        end_height: int,
        entry: RebroadcastEntry,
        result: TxResult,
        height: int,
    ) -> None:
        ctx = self.ctx
        entry.resends += 1
        metrics.REBROADCASTS.labels(supplier=ctx.supplier, phase=phase.value).inc()
        log.info(
            "resent",
            extra={
                "supplier": ctx.supplier,
                "phase": phase.value,
                "session_id": entry.session_id,
                "ok": result.ok,
                "reason": result.reason.value,
            },
        )
        if accepted(result):
            entry.tx_hash, entry.submit_height = result.tx_hash, height
        elif result.reason in _FINAL:
            await self._give_up(phase, end_height, entry, result.reason.value)
            return
        else:  # refused for now: due again at the next pass (while resends remain)
            entry.tx_hash = ""
        await ctx.rebroadcasts.put(phase.value, end_height, entry)

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
