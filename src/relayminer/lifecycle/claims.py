"""The claim part of the lifecycle: seal, check, build and submit the claims of a group.

A group is the sessions of one end height whose claim window is open. Each tree is sealed
(later relays are refused) and checked (:mod:`relayminer.lifecycle.integrity`); empty,
CUPR-mismatched and unprofitable sessions are skipped (``claim_skipped``); a damaged tree ends
the session ``claim_tx_error`` and its root is never claimed; the rest go out in one tx.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from relayminer import metrics
from relayminer.chain.base import ChainUnavailableError, TxResult
from relayminer.chain.rejections import TxPhase
from relayminer.errors import RelayMinerError
from relayminer.lifecycle.config import PassReport
from relayminer.lifecycle.context import Built, SupplierContext, accepted, failed_writes
from relayminer.lifecycle.integrity import TreeCheck, TreeVerdict, check_tree
from relayminer.proto.poktroll_pb2 import MsgCreateClaim
from relayminer.protocol.proof_requirement import claimed_upokt
from relayminer.sessions.model import SessionSnapshot, SessionState
from relayminer.smst.nodes import digest_count, digest_sum

__all__ = ["ClaimPhase"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Skip:
    reason: str


@dataclass(frozen=True, slots=True)
class _Damaged:
    check: TreeCheck


class ClaimPhase:
    """Claims of one supplier's sessions."""

    def __init__(self, ctx: SupplierContext) -> None:
        self.ctx = ctx

    async def run(self, group: list[SessionSnapshot], height: int, report: PassReport) -> None:
        """Claim ``group`` (one end height). Its Redis work is batched: a fixed number of round
        trips whatever its size (``docs/lifecycle.md``, "Capacity of one replica"); one
        session's error is its own and never fails the others."""
        ctx = self.ctx
        if not group or not await self._stream_caught_up(group[0].session_end_height, height):
            return
        by_id = {s.session_id: s for s in group}
        active = [s.session_id for s in group if s.state is SessionState.ACTIVE]
        for sid in failed_writes(await ctx.coordinator.on_sessions_claiming(active), report):
            del by_id[sid]
        roots = await ctx.trees.seal_many(list(by_id))
        fresh = await ctx.store.get_many([sid for sid, r in roots.items() if isinstance(r, bytes)])
        built: list[Built] = []
        skipped: list[str] = []
        for sid, s in by_id.items():
            root = roots[sid]
            if isinstance(root, RelayMinerError):
                report.errors.append(f"{sid}: {root}")
                continue
            outcome = await self._build(s, root, fresh.get(sid), height)
            if isinstance(outcome, Built):
                built.append(outcome)
            elif isinstance(outcome, _Skip):
                skipped.append(sid)
                log.info(
                    "claim skipped",
                    extra={"supplier": ctx.supplier, "session_id": sid, "reason": outcome.reason},
                )
            elif isinstance(outcome, _Damaged):
                await self._refuse(sid, outcome.check, report)
        if skipped:
            ended = await ctx.coordinator.on_sessions_ended(skipped, SessionState.CLAIM_SKIPPED)
            report.skipped.extend(sid for sid, err in ended.items() if err is None)
            failed_writes(ended, report)
        if built:
            await self._submit(built, height, report)

    async def _submit(self, built: list[Built], height: int, report: PassReport) -> None:
        ctx = self.ctx
        windows = await ctx.windows(built[0].snapshot.session_end_height, height)
        sent = await ctx.send_in_window(TxPhase.CLAIM, built, windows, height)
        if sent is None:
            return
        results, sent_at = sent
        claimed: list[tuple[Built, TxResult]] = []
        for b in built:
            result = results[b.snapshot.session_id]
            if accepted(result):
                assert isinstance(result, TxResult)
                claimed.append((b, result))
            else:
                await ctx.not_accepted(TxPhase.CLAIM, b, result, height, report)
        if not claimed:
            return
        written = await ctx.coordinator.on_sessions_claimed(
            [(b.snapshot.session_id, b.root, r.tx_hash) for b, r in claimed]
        )
        failed_writes(written, report)
        await ctx.remember_many(TxPhase.CLAIM, [(b, r.tx_hash) for b, r in claimed], sent_at)
        for b, _result in claimed:
            metrics.CLAIMS_SUBMITTED.labels(supplier=ctx.supplier).inc()
            ctx.record_delay(TxPhase.CLAIM, sent_at - windows.claim_open, report)
            report.claimed.append(b.snapshot.session_id)

    async def _stream_caught_up(self, end_height: int, height: int) -> bool:
        """False to defer the group: relays published before its grace period ended are still
        in the stream, and two more passes could still claim it (:mod:`~.backlog`). Past that
        the group is claimed whatever the stream holds: a late relay costs its reward, a missed
        window all of them."""
        ctx = self.ctx
        if ctx.backlog is None or await ctx.backlog.caught_up(end_height):
            return True
        windows = await ctx.windows(end_height, height)
        if windows.can_submit_claim(height + 2, ctx.config.submit_safety_blocks):
            log.info(
                "claims deferred: relays of their sessions are still in the stream",
                extra={"supplier": ctx.supplier, "session_end_height": end_height},
            )
            return False
        metrics.CLAIMS_WITH_STREAM_BACKLOG.labels(supplier=ctx.supplier).inc()
        log.warning(
            "claiming with relays of the sessions still in the stream (the window is closing)",
            extra={"supplier": ctx.supplier, "session_end_height": end_height},
        )
        return True

    async def _refuse(self, sid: str, check: TreeCheck, report: PassReport) -> None:
        """A tree whose root must not be claimed: the session ends ``claim_tx_error``."""
        ctx = self.ctx
        log.error(
            "tree does not match the session, its root is not claimed",
            extra={
                "supplier": ctx.supplier,
                "session_id": sid,
                "reason": check.verdict.value,
                "detail": check.detail,
            },
        )
        metrics.TREE_MISMATCHES.labels(supplier=ctx.supplier, reason=check.verdict.value).inc()
        await ctx.mark(sid, SessionState.CLAIM_TX_ERROR)
        report.failed[sid] = SessionState.CLAIM_TX_ERROR

    async def _build(
        self, s: SessionSnapshot, root: bytes, fresh: SessionSnapshot | None, height: int
    ) -> Built | _Skip | _Damaged | None:
        """The claim of ``s`` sealed at ``root`` (``fresh``: its counters read after the seal),
        or why it is skipped or refused, or None to retry later."""
        ctx = self.ctx
        sid = s.session_id
        # Sample proofs find nodes lost from a Redis-resident (Go layout) tree. A journal tree
        # was just built in memory from every stored leaf, so its completeness holds by
        # construction and the samples would only re-prove our own trie, at ~5 ms a session.
        journal = ctx.trees.exact_counters
        check = await check_tree(
            ctx.trees,
            fresh or s,
            root,
            0 if journal else ctx.config.tree_check_samples,
            strict=journal,
        )
        if check.damaged:
            return _Damaged(check)
        if check.verdict is TreeVerdict.COUNTERS_BEHIND:
            windows = await ctx.windows(s.session_end_height, height)
            # Wait only while two more passes could still submit (heights may be coalesced).
            if windows.can_submit_claim(height + 2, ctx.config.submit_safety_blocks):
                log.info(
                    "tree ahead of the counters, claim deferred",
                    extra={"supplier": ctx.supplier, "session_id": sid, "detail": check.detail},
                )
                return None
            # Last chance: the tree holds every committed relay; claim it as it is.
            metrics.TREE_MISMATCHES.labels(supplier=ctx.supplier, reason=check.verdict.value).inc()
            log.warning(
                "claiming a tree ahead of its counters",
                extra={"supplier": ctx.supplier, "session_id": sid, "detail": check.detail},
            )
        count, total = digest_count(root), digest_sum(root)
        if count == 0 or total == 0:
            return _Skip("empty_tree")
        try:
            service = await ctx.chain.service(s.service_id, s.session_start_height)
        except (ChainUnavailableError, RelayMinerError) as err:
            log.info("CUPR check skipped", extra={"session_id": sid, "error": str(err)})
            service = None
        if (
            service is not None
            and service.compute_units_per_relay > 0
            and (total != count * service.compute_units_per_relay)
        ):
            return _Skip("cupr_mismatch")
        if service is not None:
            try:
                params_at_start = await ctx.shared_params(s.session_start_height)
                reward = claimed_upokt(total, params_at_start, service.relay_difficulty_target)
            except (ChainUnavailableError, RelayMinerError):
                reward = None
            if reward is not None and reward <= ctx.config.min_claim_reward_upokt:
                return _Skip("unprofitable")
        header = await ctx.header(s)
        msg = MsgCreateClaim(
            supplier_operator_address=ctx.supplier, session_header=header, root_hash=root
        )
        return Built(s, msg, root)
