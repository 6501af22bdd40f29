"""Settlement: how the chain settled each claim, read from its events.

``settlement_outcome``/``settlement_height`` are recorded on the session. A session the miner
believed ``proved``/``probabilistic_proved`` whose claim the chain expired (its proof never
landed, or did not validate) is corrected to ``proof_window_closed``: the window closed
without a valid proof on chain.
"""

from __future__ import annotations

import logging

from relayminer import metrics
from relayminer.errors import RelayMinerError
from relayminer.lifecycle.context import SupplierContext

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
        events = await ctx.chain.events(start, height)
        self._events_from = height + 1
        for ev in events:
            if ev.attributes.get("supplier_operator_address") != ctx.supplier:
                continue
            outcome = _OUTCOMES.get(ev.type)
            if outcome is None:
                continue
            sid = ev.attributes.get("session_id", "")
            try:
                await ctx.store.update_settlement_metadata(sid, outcome, ev.height)
                if outcome != "expired":
                    continue
                snapshot = await ctx.store.get(sid)
                if snapshot is not None and snapshot.state.is_success:
                    log.error(
                        "claim expired on chain after the proof was submitted",
                        extra={
                            "supplier": ctx.supplier,
                            "session_id": sid,
                            "reason": ev.attributes.get("expiration_reason", ""),
                        },
                    )
                    metrics.PROOFS_FAILED.labels(supplier=ctx.supplier, reason="expired").inc()
                    await ctx.coordinator.on_proof_window_closed(sid)
            except RelayMinerError:
                continue  # the snapshot expired or was never ours
