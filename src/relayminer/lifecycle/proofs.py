"""The proof part of the lifecycle: decide whether a proof is owed, build it, submit it.

A group is the claimed sessions of one end height once their proof window is open. The claim
must be on chain (else ``claim_missing``); the proof requirement is predicted exactly as the
chain decides it (``probabilistic_proved`` when none is owed); the closest proof is built at
``proof_path(seed block hash, session id)`` from the sealed tree; all proofs of a group go out
in one tx.
"""

from __future__ import annotations

import logging

from relayminer import metrics
from relayminer.chain.base import ChainUnavailableError, TxResult
from relayminer.chain.rejections import TxPhase
from relayminer.errors import RelayMinerError
from relayminer.lifecycle.config import PassReport
from relayminer.lifecycle.context import Built, SupplierContext, accepted
from relayminer.proto.poktroll_pb2 import MsgSubmitProof, SessionHeader
from relayminer.protocol.proof_requirement import (
    ProofRequirementReason,
    build_claim,
    proof_requirement,
)
from relayminer.sessions.model import SessionSnapshot, SessionState
from relayminer.smst.journal_trees import JournalTreeMismatchError
from relayminer.smst.proof import proof_path

__all__ = ["ProofPhase"]

log = logging.getLogger(__name__)


class ProofPhase:
    """Proofs of one supplier's claimed sessions."""

    def __init__(self, ctx: SupplierContext) -> None:
        self.ctx = ctx

    async def run(
        self, group: list[SessionSnapshot], end_height: int, height: int, report: PassReport
    ) -> None:
        ctx = self.ctx
        windows = await ctx.windows(end_height, height)
        seed_hash = await ctx.chain.block_hash(windows.proof_seed_height)
        built: list[Built] = []
        for s in group:
            sid = s.session_id
            outcome = await self._build(s, seed_hash)
            if isinstance(outcome, Built):
                # ``proving``: a proof is on its way (a session that needs none goes from
                # ``claimed`` to its end in one write; the rules treat both states alike)
                if s.state is SessionState.CLAIMED:
                    await ctx.coordinator.on_session_proving(sid)
                built.append(outcome)
            elif outcome is SessionState.PROBABILISTIC_PROVED:
                await ctx.coordinator.on_probabilistic_proved(sid)
                report.proved.append(sid)
            elif outcome in (SessionState.CLAIM_MISSING, SessionState.PROOF_TX_ERROR):
                await ctx.mark(sid, outcome)
                report.failed[sid] = outcome
        if not built:
            return
        sent = await ctx.send_in_window(TxPhase.PROOF, built, windows, height)
        if sent is None:
            return
        results, sent_at = sent
        for b in built:
            sid = b.snapshot.session_id
            result = results[sid]
            if accepted(result):
                assert isinstance(result, TxResult)
                await ctx.coordinator.on_proof_submitted(sid, result.tx_hash)
                await ctx.remember(TxPhase.PROOF, b, sent_at, result.tx_hash)
                await ctx.coordinator.on_session_proved(sid)
                metrics.PROOFS_SUBMITTED.labels(supplier=ctx.supplier).inc()
                ctx.record_delay(TxPhase.PROOF, sent_at - windows.proof_open, report)
                report.proved.append(sid)
                continue
            await ctx.not_accepted(TxPhase.PROOF, b, result, height, report)

    async def _claim_on_chain(self, sid: str) -> bool:
        """The GetClaim guard; fails open (True) when the chain cannot be asked."""
        if not self.ctx.config.pre_proof_claim_check:
            return True
        try:
            return await self.ctx.chain.get_claim(self.ctx.supplier, sid) is not None
        except ChainUnavailableError:
            return True

    async def _required(
        self, s: SessionSnapshot, header: SessionHeader, root: bytes, seed_hash: bytes
    ) -> bool:
        """The chain's proof requirement for the claim; True (prove) when it cannot be
        decided."""
        ctx = self.ctx
        try:
            service = await ctx.chain.service(s.service_id, s.session_start_height)
            claim = build_claim(
                supplier_operator_address=ctx.supplier,
                application_address=header.application_address,
                service_id=header.service_id,
                session_id=header.session_id,
                session_start_block_height=header.session_start_block_height,
                session_end_block_height=header.session_end_block_height,
                root_hash=root,
            )
            reason = proof_requirement(
                claim,
                await ctx.chain.proof_params(),
                await ctx.shared_params(s.session_start_height),
                service.relay_difficulty_target,
                seed_hash,
            )
        except (ChainUnavailableError, RelayMinerError) as err:
            log.info(
                "proof requirement unknown, proving",
                extra={"session_id": s.session_id, "error": str(err)},
            )
            return True
        return reason is not ProofRequirementReason.NOT_REQUIRED

    async def _build(self, s: SessionSnapshot, seed_hash: bytes) -> Built | SessionState | None:
        """The proof of ``s``, or the terminal state it ends in, or None to retry later."""
        ctx = self.ctx
        sid = s.session_id
        if not await self._claim_on_chain(sid):
            return SessionState.CLAIM_MISSING
        root = s.claimed_root_hash or await ctx.trees.sealed_root(sid)
        if root is None:
            log.warning("claimed root unavailable", extra={"session_id": sid})
            return SessionState.PROOF_TX_ERROR
        header = await ctx.header(s)
        if not await self._required(s, header, root, seed_hash):
            return SessionState.PROBABILISTIC_PROVED
        try:
            sealed_root, proof = await ctx.trees.prove_closest(sid, proof_path(seed_hash, sid))
        except JournalTreeMismatchError as err:  # leaves lost since the seal: cannot heal
            log.error("journal no longer matches the sealed root", extra={"error": str(err)})
            return SessionState.PROOF_TX_ERROR
        if sealed_root != root:
            log.error("sealed tree does not match the claimed root", extra={"session_id": sid})
            return SessionState.PROOF_TX_ERROR
        msg = MsgSubmitProof(
            supplier_operator_address=ctx.supplier,
            session_header=header,
            proof=proof.compact().to_bytes(),
        )
        return Built(s, msg, root)
