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
from relayminer.lifecycle.context import Built, SupplierContext, accepted, failed_writes
from relayminer.lifecycle.rules import Windows
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
        """Prove ``group`` (one end height). Its Redis work is batched: a fixed number of round
        trips whatever its size (``docs/lifecycle.md``, "Capacity of one replica"); one
        session's error is its own and never fails the others."""
        ctx = self.ctx
        windows = await ctx.windows(end_height, height)
        seed_hash = await ctx.chain.block_hash(windows.proof_seed_height)
        owed: dict[str, tuple[SessionSnapshot, SessionHeader, bytes]] = {}
        not_owed: list[str] = []
        on_chain = await self._claims_on_chain()
        for s in group:
            outcome = await self._owed(s, seed_hash, on_chain)
            if isinstance(outcome, tuple):
                owed[s.session_id] = (s, *outcome)
            elif outcome is SessionState.PROBABILISTIC_PROVED:
                not_owed.append(s.session_id)
            elif outcome is not None:
                await self._end(s.session_id, outcome, report)
        if not_owed:
            ended = await ctx.coordinator.on_sessions_ended(
                not_owed, SessionState.PROBABILISTIC_PROVED
            )
            report.proved.extend(sid for sid, err in ended.items() if err is None)
            failed_writes(ended, report)
        built = await self._build(owed, seed_hash, report)
        # ``proving``: a proof is on its way (a session that needs none goes from ``claimed``
        # to its end in one write; the rules treat both states alike)
        claimed = [b.snapshot.session_id for b in built if b.snapshot.state is SessionState.CLAIMED]
        failed = set(failed_writes(await ctx.coordinator.on_sessions_proving(claimed), report))
        built = [b for b in built if b.snapshot.session_id not in failed]
        if built:
            await self._submit(built, windows, height, report)

    async def _submit(
        self, built: list[Built], windows: Windows, height: int, report: PassReport
    ) -> None:
        ctx = self.ctx
        sent = await ctx.send_in_window(TxPhase.PROOF, built, windows, height)
        if sent is None:
            return
        results, sent_at = sent
        proved: list[tuple[Built, str]] = []
        for b in built:
            result = results[b.snapshot.session_id]
            if accepted(result):
                assert isinstance(result, TxResult)
                proved.append((b, result.tx_hash))
            else:
                await ctx.not_accepted(TxPhase.PROOF, b, result, height, report)
        if not proved:
            return
        await ctx.remember_many(TxPhase.PROOF, proved, sent_at)
        await ctx.coordinator.on_sessions_proved([(b.snapshot.session_id, tx) for b, tx in proved])
        for b, _tx in proved:
            metrics.PROOFS_SUBMITTED.labels(supplier=ctx.supplier).inc()
            ctx.record_delay(TxPhase.PROOF, sent_at - windows.proof_open, report)
            report.proved.append(b.snapshot.session_id)

    async def _end(self, sid: str, state: SessionState, report: PassReport) -> None:
        await self.ctx.mark(sid, state)
        report.failed[sid] = state

    async def _claims_on_chain(self) -> set[str] | None:
        """The GetClaim guard, for the whole group in one query: the session ids the chain holds
        a claim of for this supplier. None (prove everything) when the check is off or the chain
        cannot be asked (fail open)."""
        if not self.ctx.config.pre_proof_claim_check:
            return None
        try:
            claims = await self.ctx.chain.claims(self.ctx.supplier)
        except ChainUnavailableError:
            return None
        return {c.session_header.session_id for c in claims}

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

    async def _owed(
        self, s: SessionSnapshot, seed_hash: bytes, on_chain: set[str] | None
    ) -> tuple[SessionHeader, bytes] | SessionState:
        """The header and claimed root of a proof ``s`` owes, or the state it ends in
        (``on_chain``: :meth:`_claims_on_chain`)."""
        ctx = self.ctx
        sid = s.session_id
        if on_chain is not None and sid not in on_chain:
            return SessionState.CLAIM_MISSING
        root = s.claimed_root_hash or await ctx.trees.sealed_root(sid)
        if root is None:
            log.warning("claimed root unavailable", extra={"session_id": sid})
            return SessionState.PROOF_TX_ERROR
        header = await ctx.header(s)
        if not await self._required(s, header, root, seed_hash):
            return SessionState.PROBABILISTIC_PROVED
        return header, root

    async def _build(
        self,
        owed: dict[str, tuple[SessionSnapshot, SessionHeader, bytes]],
        seed_hash: bytes,
        report: PassReport,
    ) -> list[Built]:
        """The proofs of the ``owed`` sessions, from their sealed trees (one round trip for
        the group). A tree that no longer matches its claimed root ends the session
        ``proof_tx_error`` (it cannot heal); any other error is retried at the next pass."""
        ctx = self.ctx
        proofs = await ctx.trees.prove_group({sid: proof_path(seed_hash, sid) for sid in owed})
        built: list[Built] = []
        for sid, (s, header, root) in owed.items():
            proven = proofs[sid]
            if isinstance(proven, JournalTreeMismatchError):  # leaves lost since the seal
                log.error("journal no longer matches the sealed root", extra={"error": str(proven)})
                await self._end(sid, SessionState.PROOF_TX_ERROR, report)
                continue
            if isinstance(proven, RelayMinerError):
                report.errors.append(f"{sid}: {proven}")
                continue
            sealed_root, proof = proven
            if sealed_root != root:
                log.error("sealed tree does not match the claimed root", extra={"session_id": sid})
                await self._end(sid, SessionState.PROOF_TX_ERROR, report)
                continue
            msg = MsgSubmitProof(
                supplier_operator_address=ctx.supplier,
                session_header=header,
                proof=proof.compact().to_bytes(),
            )
            built.append(Built(s, msg, root))
        return built
