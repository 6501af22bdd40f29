"""What every part of one supplier's lifecycle shares: the chain, the stores, the settings,
the params cache of the current pass, and the outcome of a submission the chain refused.

The parts (:mod:`~relayminer.lifecycle.claims`, :mod:`~relayminer.lifecycle.proofs`,
:mod:`~relayminer.lifecycle.reconciler`, :mod:`~relayminer.lifecycle.settlement`) each hold
one :class:`SupplierContext`; :class:`~relayminer.lifecycle.manager.LifecycleManager` builds it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from relayminer import metrics
from relayminer.chain.base import Chain, ChainUnavailableError, Msg, TxResult
from relayminer.chain.rejections import Rejection, TxPhase
from relayminer.errors import RelayMinerError
from relayminer.lifecycle.backlog import StreamBacklog
from relayminer.lifecycle.config import LifecycleConfig, PassReport
from relayminer.lifecycle.rebroadcast import RebroadcastEntry, RebroadcastStore
from relayminer.lifecycle.rules import Windows
from relayminer.proto.poktroll_pb2 import SessionHeader
from relayminer.protocol.windows import SharedParams
from relayminer.sessions.coordinator import SessionCoordinator
from relayminer.sessions.model import SessionSnapshot, SessionState
from relayminer.sessions.store import RedisSessionStore
from relayminer.smst.session_trees import SessionTrees

__all__ = ["Built", "SupplierContext", "accepted", "failed_writes"]

log = logging.getLogger(__name__)

#: Where each phase ends when a final rejection or too many attempts stop it.
_WINDOW_CLOSED = {
    TxPhase.CLAIM: SessionState.CLAIM_WINDOW_CLOSED,
    TxPhase.PROOF: SessionState.PROOF_WINDOW_CLOSED,
}
_TX_ERROR = {TxPhase.CLAIM: SessionState.CLAIM_TX_ERROR, TxPhase.PROOF: SessionState.PROOF_TX_ERROR}


def accepted(result: TxResult | Exception) -> bool:
    """The chain took the tx: CheckTx code 0, or the same bytes are already in its mempool
    (``sdk`` 19: keep the hash and wait for inclusion)."""
    return isinstance(result, TxResult) and (
        result.ok or result.reason is Rejection.ALREADY_IN_MEMPOOL
    )


def failed_writes(outcomes: Mapping[str, RelayMinerError | None], report: PassReport) -> list[str]:
    """The sessions of a group write that failed, each recorded in the pass report."""
    failed = [sid for sid, err in outcomes.items() if err is not None]
    for sid in failed:
        report.errors.append(f"{sid}: {outcomes[sid]}")
    return failed


@dataclass
class Built:
    """A claim or proof message ready to broadcast for one session."""

    snapshot: SessionSnapshot
    msg: Msg
    root: bytes = b""


@dataclass
class SupplierContext:
    supplier: str
    chain: Chain
    config: LifecycleConfig
    store: RedisSessionStore
    coordinator: SessionCoordinator
    trees: SessionTrees
    rebroadcasts: RebroadcastStore
    #: raises LeaseLostError when this replica no longer holds the supplier's lease
    check_fence: Callable[[], Awaitable[None]]
    #: the supplier's relay stream, for claims that wait for their relays (None: they do not)
    backlog: StreamBacklog | None = None
    #: shared params by height (None: live), reset at every pass
    params: dict[int | None, SharedParams] = field(default_factory=dict)
    #: rejected broadcasts per (phase, session id), for ``max_submit_attempts``
    attempts: dict[tuple[TxPhase, str], int] = field(default_factory=lambda: defaultdict(int))

    # --- chain reads ------------------------------------------------------------------------
    async def shared_params(self, at: int | None) -> SharedParams:
        if at not in self.params:
            self.params[at] = await self.chain.shared_params(at)
        return self.params[at]

    async def windows(self, end_height: int, height: int) -> Windows:
        # Params effective at the session end (live while the session is not over yet).
        params = await self.shared_params(end_height if end_height < height else None)
        return Windows.for_session(params, end_height)

    async def header(self, s: SessionSnapshot) -> SessionHeader:
        try:
            session = await self.chain.get_session(
                s.application_address, s.service_id, s.session_start_height
            )
            return session.header
        except (ChainUnavailableError, RelayMinerError) as err:
            log.info(
                "session query failed, using the snapshot's header",
                extra={"session_id": s.session_id, "error": str(err)},
            )
            return SessionHeader(
                application_address=s.application_address,
                service_id=s.service_id,
                session_id=s.session_id,
                session_start_block_height=s.session_start_height,
                session_end_block_height=s.session_end_height,
            )

    # --- broadcasting -----------------------------------------------------------------------
    async def broadcast(self, built: Sequence[Built]) -> dict[str, TxResult | Exception]:
        """:meth:`broadcast_msgs` of the built messages, keyed by session id."""
        return await self.broadcast_msgs({b.snapshot.session_id: b.msg for b in built})

    async def broadcast_msgs(self, msgs: Mapping[str, Msg]) -> dict[str, TxResult | Exception]:
        """One tx for the whole group (session id -> message); if the chain rejects it, each
        member alone, so every session gets its own outcome (a tx is atomic: one bad message
        fails them all). A member the chain could not be asked about gets the error."""
        results: dict[str, TxResult | Exception] = {}
        await self.check_fence()
        try:
            result = await self.chain.broadcast(list(msgs.values()))
        except ChainUnavailableError as err:
            return dict.fromkeys(msgs, err)
        if accepted(result) or len(msgs) == 1:
            return dict.fromkeys(msgs, result)
        for sid, msg in msgs.items():
            try:
                results[sid] = await self.chain.broadcast([msg])
            except ChainUnavailableError as err:
                results[sid] = err
        return results

    async def send_in_window(
        self, phase: TxPhase, built: Sequence[Built], windows: Windows, height: int
    ) -> tuple[dict[str, TxResult | Exception], int] | None:
        """Broadcast a claim or proof group unless its window passed while the pass ran (it
        could only fail at execution, for a fee; the next pass closes it): the outcomes and the
        height the broadcast is counted from, or None when nothing was sent."""
        sent_at = await self.height_now(height)
        can_submit = (
            windows.can_submit_claim if phase is TxPhase.CLAIM else windows.can_submit_proof
        )
        if not can_submit(sent_at, self.config.submit_safety_blocks):
            log.warning(
                f"{phase.value} window passed during the pass, not sent",
                extra={"supplier": self.supplier, "height": sent_at, "sessions": len(built)},
            )
            return None
        results = await self.broadcast(built)
        # The broadcast itself can take blocks on a busy replica: inclusion deadlines and
        # delays count from the height it was in the mempool at.
        return results, await self.height_now(sent_at)

    async def height_now(self, fallback: int) -> int:
        """The newest block now: what a broadcast is measured from. Under load a pass can end
        blocks after the height it started at; its broadcasts land after *this* height, and
        their inclusion deadline and delay count from it (``fallback`` when the chain cannot
        say)."""
        try:
            return max(fallback, (await self.chain.latest_block()).height)
        except ChainUnavailableError:
            return fallback

    def record_delay(self, phase: TxPhase, blocks: int, report: PassReport) -> None:
        """A claim or proof went out ``blocks`` after its window opened (0: at once)."""
        metrics.SUBMIT_DELAY_BLOCKS.labels(phase=phase.value).observe(blocks)
        report.delays.append((phase.value, blocks))

    async def remember(self, phase: TxPhase, b: Built, height: int, tx_hash: str) -> None:
        """Keep the message for the inclusion reconciler."""
        await self.remember_many(phase, [(b, tx_hash)], height)

    async def remember_many(
        self, phase: TxPhase, sent: Sequence[tuple[Built, str]], height: int
    ) -> None:
        """Keep the messages of a group, ``(built, tx hash)``, for the inclusion reconciler:
        one round trip per session end height."""
        by_end: dict[int, list[RebroadcastEntry]] = defaultdict(list)
        for b, tx_hash in sent:
            s = b.snapshot
            by_end[s.session_end_height].append(
                RebroadcastEntry(
                    s.session_id, b.msg.SerializeToString(), height, tx_hash, tx_hash, s.service_id
                )
            )
        for end_height, entries in by_end.items():
            await self.rebroadcasts.put_many(phase.value, end_height, entries)

    async def mark(self, sid: str, state: SessionState) -> None:
        """Record a terminal failure through the coordinator (its guarded markers)."""
        marker = {
            SessionState.CLAIM_WINDOW_CLOSED: self.coordinator.on_claim_window_closed,
            SessionState.PROOF_WINDOW_CLOSED: self.coordinator.on_proof_window_closed,
            SessionState.CLAIM_TX_ERROR: self.coordinator.on_claim_tx_error,
            SessionState.PROOF_TX_ERROR: self.coordinator.on_proof_tx_error,
            SessionState.CLAIM_MISSING: self.coordinator.on_claim_missing,
        }[state]
        await marker(sid)

    async def not_accepted(
        self,
        phase: TxPhase,
        b: Built,
        result: TxResult | Exception,
        height: int,
        report: PassReport,
    ) -> None:
        """A claim or proof the chain did not take; the decision rests on the classified
        :class:`Rejection` alone (``docs/chain.md``):

        - ``WINDOW_CLOSED`` ends the session ``*_window_closed``;
        - ``PROOF_NOT_REQUIRED`` on a proof ends it ``probabilistic_proved`` (nothing owed);
        - ``CLAIM_MISSING`` on a proof ends it ``claim_missing``;
        - ``INVALID_CONTENT`` and ``CONFIGURATION`` end it ``*_tx_error`` at once (resending the
          same content cannot succeed);
        - anything else is counted; at ``max_submit_attempts`` the session ends ``*_tx_error``
          with the message kept for the reconciler's one emergency resend.

        A transport failure (no answer) is not counted: the session keeps its state and the
        next pass re-drives it.
        """
        sid = b.snapshot.session_id
        reason = result.reason if isinstance(result, TxResult) else Rejection.UNAVAILABLE
        failed = metrics.CLAIMS_FAILED if phase is TxPhase.CLAIM else metrics.PROOFS_FAILED
        failed.labels(supplier=self.supplier, reason=reason.value).inc()
        log.warning(
            f"{phase.value} not accepted",
            extra={
                "supplier": self.supplier,
                "session_id": sid,
                "reason": reason.value,
                "codespace": result.codespace if isinstance(result, TxResult) else "",
                "code": result.code if isinstance(result, TxResult) else -1,
                "log": result.log if isinstance(result, TxResult) else str(result),
            },
        )
        if reason is Rejection.UNAVAILABLE:
            return
        end: SessionState | None = None
        if reason is Rejection.WINDOW_CLOSED:
            end = _WINDOW_CLOSED[phase]
        elif phase is TxPhase.PROOF and reason is Rejection.PROOF_NOT_REQUIRED:
            await self.coordinator.on_probabilistic_proved(sid)
            report.proved.append(sid)
            return
        elif phase is TxPhase.PROOF and reason is Rejection.CLAIM_MISSING:
            end = SessionState.CLAIM_MISSING
        elif reason in (Rejection.INVALID_CONTENT, Rejection.CONFIGURATION):
            end = _TX_ERROR[phase]
        else:
            self.attempts[(phase, sid)] += 1
            if self.attempts[(phase, sid)] < self.config.max_submit_attempts:
                return
            end = _TX_ERROR[phase]
            await self.remember(phase, b, height, "")  # "never broadcast": resend once
        await self.mark(sid, end)
        report.failed[sid] = end

    def forget(self, session_id: str) -> None:
        for phase in TxPhase:
            self.attempts.pop((phase, session_id), None)
