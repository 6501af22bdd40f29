"""Settlement: how the chain settled each claim, read from its events.

``settlement_outcome``/``settlement_height`` are recorded on the session (a block's outcomes
for the supplier in one round trip; a session we do not have is skipped). A session the miner
believed ``proved``/``probabilistic_proved`` whose claim the chain expired (its proof never
landed, or did not validate) is corrected to ``proof_window_closed``: the window closed
without a valid proof on chain.
"""

from __future__ import annotations

import logging

from relayminer import metrics
from relayminer.chain.cache import supplier_events
from relayminer.errors import RelayMinerError
from relayminer.lifecycle.context import SupplierContext
from relayminer.sessions.model import session_id_problem

__all__ = ["SettlementRecorder"]

log = logging.getLogger(__name__)

_OUTCOMES = {
    "EventClaimSettled": "settled_proven",
    "EventClaimExpired": "expired",
    "EventClaimDiscarded": "discarded",
}


class SettlementRecorder:
    def __init__(self, ctx: SupplierContext) -> None:
        self.ctx = ctx
        self._events_from = 0

    async def run(self, height: int) -> None:
        ctx = self.ctx
        start = self._events_from or height
        if start > height:
            return
        events = await supplier_events(ctx.chain, ctx.supplier, start, height)
        settled: dict[str, tuple[str, str, int]] = {}
        expired_reason: dict[str, str] = {}
        for ev in events:
            outcome = _OUTCOMES.get(ev.type)
            sid = ev.attributes.get("session_id", "")
            if outcome is None or session_id_problem(sid) is not None:
                continue  # not a settlement, or no session of ours
            settled[sid] = (sid, outcome, ev.height)
            if outcome == "expired":
                expired_reason[sid] = ev.attributes.get("expiration_reason", "")
        # One round trip for the block's outcomes, one to read the expired ones back. The
        # events are read again by the next pass unless these outcomes were written.
        written = await ctx.store.update_settlements(list(settled.values())) if settled else {}
        self._events_from = height + 1
        expired = [sid for sid in expired_reason if written[sid] is None]
        if not expired:
            return
        snapshots = await ctx.store.get_many(expired)
        for sid in expired:
            snapshot = snapshots.get(sid)
            if snapshot is None or not snapshot.state.is_success:
                continue  # never claimed by us, or the miner already knew the proof failed
            log.error(
                "claim expired on chain after the proof was submitted",
                extra={
                    "supplier": ctx.supplier,
                    "session_id": sid,
                    "reason": expired_reason.get(sid, ""),
                },
            )
            metrics.PROOFS_FAILED.labels(supplier=ctx.supplier, reason="expired").inc()
            try:
                await ctx.coordinator.on_proof_window_closed(sid)
            except RelayMinerError:
                continue  # the snapshot expired meanwhile
