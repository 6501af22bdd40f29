"""LifecycleManager: drives one supplier's sessions through their claim and proof windows.

One level-triggered pass per block (spec/lifecycle.md §3.3, §3.9b). A pass reads the supplier's
non-terminal sessions from Redis (so a restart or a failover resumes exactly where the last
owner stopped), decides each one's action from its state and windows
(:mod:`relayminer.lifecycle.rules`), then:

- **claims** the sessions whose claim window is open, batched per session end height: the tree
  is sealed (later relays are refused), empty, CUPR-mismatched and unprofitable sessions are
  skipped (``claim_skipped``), the rest go out in one transaction;
- **proves** claimed sessions once the proof window is open: the claim must be on chain, the
  proof requirement is predicted exactly as the chain decides it, a proof is built only when
  required (otherwise ``probabilistic_proved``), all proofs of a group go out in one tx;
- marks sessions whose window passed (``claim_window_closed`` / ``proof_window_closed``);
- runs the inclusion reconciler: a claim or proof accepted by the mempool but not included is
  resent once, from its stored message (:mod:`relayminer.lifecycle.rebroadcast`);
- records settlement outcomes from the chain's events.

Deliberate fixes over the Go miner (§3.10): every result is keyed by session id, never by list
position (Q1, Q2); a rejected batch is retried member by member so one bad session does not fail
the others, and each member's outcome is its own (Q2, Q5); one group's failure never aborts the
other groups (Q3); ``claiming``/``proving`` sessions are re-driven while their window is open
(Q3); a claim healed by the reconciler after ``claim_tx_error`` re-enters the proof flow (Q4);
empty trees are finalised as ``claim_skipped`` (Q6). Every transition goes through the
:class:`~relayminer.sessions.coordinator.SessionCoordinator`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from relayminer import metrics
from relayminer.chain.base import Block, Chain, ChainUnavailableError, Msg, TxResult
from relayminer.errors import LeaseLostError, RelayMinerError
from relayminer.keys import KeyBuilder
from relayminer.lifecycle.rebroadcast import CLAIM, PROOF, RebroadcastEntry, RebroadcastStore
from relayminer.lifecycle.rules import Action, Windows, next_action
from relayminer.proto.poktroll_pb2 import (
    VALIDATED,
    MsgCreateClaim,
    MsgSubmitProof,
    SessionHeader,
)
from relayminer.protocol.proof_requirement import (
    ProofRequirementReason,
    build_claim,
    claimed_upokt,
    proof_requirement,
)
from relayminer.protocol.windows import SharedParams
from relayminer.runtime.aio import wait_or_stop
from relayminer.runtime.leases import Fence
from relayminer.sessions.coordinator import SessionCoordinator
from relayminer.sessions.dedup import DeduplicatorConfig, RedisDeduplicator
from relayminer.sessions.model import SessionSnapshot, SessionState
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig
from relayminer.smst.nodes import digest_count, digest_sum
from relayminer.smst.proof import proof_path
from relayminer.smst.redis_store import RedisSMSTStore

log = logging.getLogger(__name__)

_LIVE_STATES = (
    SessionState.ACTIVE,
    SessionState.CLAIMING,
    SessionState.CLAIMED,
    SessionState.PROVING,
)
_SUCCESS_CLEANUP = (
    SessionState.PROVED,
    SessionState.PROBABILISTIC_PROVED,
    SessionState.CLAIM_SKIPPED,
)


@dataclass(frozen=True)
class LifecycleConfig:
    #: blocks of slack kept before a window closes when submitting (mempool delay)
    submit_safety_blocks: int = 1
    #: rejected broadcasts of one session before it is marked claim/proof_tx_error
    max_submit_attempts: int = 3
    #: a claim is skipped as unprofitable unless its reward exceeds this (the estimated fees of
    #: a claim and a proof; the Go miner's floor is 1 uPOKT per tx)
    min_claim_reward_upokt: int = 2
    #: the GetClaim guard before proving
    pre_proof_claim_check: bool = True
    #: one tx per session end height (False: one tx per session)
    batch_claims: bool = True
    batch_proofs: bool = True
    #: inclusion reconciler
    max_rebroadcasts: int = 1
    rebroadcast_safety_blocks: int = 1
    rebroadcast_ttl_seconds: int = 3600
    #: how long one wait for the next block may take before the loop checks ``stop`` again
    block_wait_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        for name in (
            "submit_safety_blocks",
            "max_submit_attempts",
            "min_claim_reward_upokt",
            "max_rebroadcasts",
            "rebroadcast_safety_blocks",
            "rebroadcast_ttl_seconds",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"LifecycleConfig.{name} must be an int >= 0, got {value!r}")
        if self.max_submit_attempts < 1:
            raise ValueError("LifecycleConfig.max_submit_attempts must be >= 1")


@dataclass
class PassReport:
    """What one pass did (tests and the demo read it)."""

    height: int
    claimed: list[str] = field(default_factory=list)
    proved: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, SessionState] = field(default_factory=dict)
    resent: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class _Built:
    snapshot: SessionSnapshot
    msg: Msg
    root: bytes = b""


class LifecycleManager:
    """Claims and proofs of one supplier's sessions against a :class:`Chain`."""

    def __init__(
        self,
        redis: Redis,
        supplier: str,
        chain: Chain,
        *,
        keys: KeyBuilder | None = None,
        config: LifecycleConfig | None = None,
        session_ttl_seconds: int = 7200,
        fence: Fence | None = None,
        on_pass: Callable[[PassReport], Awaitable[None] | None] | None = None,
    ) -> None:
        self.supplier = supplier
        self.chain = chain
        self.keys = keys or KeyBuilder()
        self.config = config or LifecycleConfig()
        self._redis = redis
        self.store = RedisSessionStore(
            redis,
            SessionStoreConfig(supplier, self.keys.miner_sessions_prefix(), session_ttl_seconds),
            fence=fence,
        )
        self.coordinator = SessionCoordinator(self.store, supplier)
        self.coordinator.set_on_session_terminal_callback(self._cleanup)
        self.trees = RedisSMSTStore(
            redis, supplier, keys=self.keys, ttl_seconds=session_ttl_seconds, fence=fence
        )
        self.dedup = RedisDeduplicator(redis, DeduplicatorConfig(self.keys.miner_dedup_prefix()))
        self.rebroadcasts = RebroadcastStore(
            redis,
            supplier,
            keys=self.keys,
            ttl_seconds=self.config.rebroadcast_ttl_seconds,
            fence=fence,
        )
        self._params: dict[int | None, SharedParams] = {}
        self._attempts: dict[tuple[str, str], int] = defaultdict(int)
        self._last_height = 0
        self._events_from = 0
        self._on_pass = on_pass
        self._fence = fence

    # --- loop -------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """One pass per new block until ``stop`` is set. Heights are coalesced: a slow pass is
        followed by one pass at the newest height (the rules are level-triggered)."""
        while not stop.is_set():
            block = await self._next_block(stop)
            if block is None or block.height <= self._last_height:
                continue
            try:
                await self.pass_at(block.height)
            except LeaseLostError:
                raise
            except RelayMinerError as err:  # a failed pass is retried at the next block
                log.warning(
                    "lifecycle pass failed",
                    extra={"supplier": self.supplier, "height": block.height, "error": repr(err)},
                )

    async def _next_block(self, stop: asyncio.Event) -> Block | None:
        """The next block, or None when ``stop`` was set (or the wait timed out) first."""
        waiter = asyncio.ensure_future(
            self.chain.wait_for_block(
                self._last_height + 1, timeout=self.config.block_wait_timeout_seconds
            )
        )
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (waiter, stopper):
                if not fut.done():
                    fut.cancel()
        if not waiter.done() or waiter.cancelled():
            return None
        try:
            return waiter.result()
        except TimeoutError:
            return None
        except ChainUnavailableError as err:
            log.warning("chain unavailable", extra={"supplier": self.supplier, "error": str(err)})
            await wait_or_stop(stop, self.config.block_wait_timeout_seconds)
            return None

    # --- one pass ---------------------------------------------------------------------------
    async def pass_at(self, height: int) -> PassReport:
        """Run every rule at ``height`` (the newest committed block)."""
        report = PassReport(height)
        await self._check_fence()
        self._params = {}
        sessions: list[SessionSnapshot] = []
        for state in _LIVE_STATES:
            sessions += await self.store.get_by_state(state)
        claims: dict[int, list[SessionSnapshot]] = defaultdict(list)
        proofs: dict[int, list[SessionSnapshot]] = defaultdict(list)
        for s in sessions:
            try:
                windows = await self._windows(s.session_end_height, height)
            except ChainUnavailableError as err:
                report.errors.append(f"{s.session_id}: params unavailable: {err}")
                continue
            action = next_action(
                s.state,
                s.claim_tx_hash,
                s.proof_tx_hash,
                height,
                windows,
                safety_blocks=self.config.submit_safety_blocks,
            )
            try:
                if action is Action.CLAIM:
                    claims[s.session_end_height].append(s)
                elif action is Action.PROVE:
                    proofs[s.session_end_height].append(s)
                elif action is Action.MARK_PROVED:
                    await self.coordinator.on_session_proved(s.session_id)
                    report.proved.append(s.session_id)
                elif action in (Action.CLAIM_WINDOW_CLOSED, Action.PROOF_WINDOW_CLOSED):
                    closed = SessionState(action.value)
                    await self._mark(s.session_id, closed)
                    report.failed[s.session_id] = closed
            except LeaseLostError:
                raise
            except RelayMinerError as err:
                report.errors.append(f"{s.session_id}: {err}")
        for _end_height, group in sorted(claims.items()):
            for batch in self._batches(group, self.config.batch_claims):
                await self._guarded(report, self._claim(batch, height, report))
        for end_height, group in sorted(proofs.items()):
            for batch in self._batches(group, self.config.batch_proofs):
                await self._guarded(report, self._prove(batch, end_height, height, report))
        await self._guarded(report, self._reconcile(height, report))
        await self._guarded(report, self._record_settlements(height))
        self._last_height = max(self._last_height, height)
        for state in _LIVE_STATES:
            count = sum(1 for s in sessions if s.state is state)
            metrics.SESSIONS_BY_STATE.labels(supplier=self.supplier, state=state.value).set(count)
        if report.errors:
            log.warning(
                "lifecycle pass had errors",
                extra={"supplier": self.supplier, "height": height, "errors": report.errors[:5]},
            )
        if self._on_pass is not None:
            outcome = self._on_pass(report)
            if outcome is not None:
                await outcome
        return report

    @staticmethod
    def _batches(group: list[SessionSnapshot], batched: bool) -> list[list[SessionSnapshot]]:
        group = sorted(group, key=lambda s: s.session_id)
        return [group] if batched else [[s] for s in group]

    async def _guarded(self, report: PassReport, work: Awaitable[None]) -> None:
        """One group's failure is recorded and never aborts the other groups (Q3)."""
        try:
            await work
        except LeaseLostError:
            raise
        except (RelayMinerError, OSError) as err:
            report.errors.append(repr(err))

    async def _shared_params(self, at: int | None) -> SharedParams:
        if at not in self._params:
            self._params[at] = await self.chain.shared_params(at)
        return self._params[at]

    async def _windows(self, end_height: int, height: int) -> Windows:
        # Params effective at the session end (live while the session is not over yet).
        params = await self._shared_params(end_height if end_height < height else None)
        return Windows.for_session(params, end_height)

    async def _check_fence(self) -> None:
        """Refuse to act for a supplier whose lease this replica no longer holds (the seal and
        every relay write are fenced atomically in their scripts; this guards the chain)."""
        if self._fence is None:
            return
        current = await self._redis.get(self._fence.key)
        if current != self._fence.token.encode():
            raise LeaseLostError(f"lease of {self.supplier} is no longer ours")

    # --- claims -----------------------------------------------------------------------------
    async def _claim(self, group: list[SessionSnapshot], height: int, report: PassReport) -> None:
        built: list[_Built] = []
        for s in group:
            if s.state is SessionState.ACTIVE:
                await self.coordinator.on_session_claiming(s.session_id)
            outcome = await self._build_claim(s, height)
            if isinstance(outcome, _Built):
                built.append(outcome)
            elif outcome is not None:
                await self.coordinator.on_claim_skipped(s.session_id)
                report.skipped.append(s.session_id)
                log.info(
                    "claim skipped",
                    extra={
                        "supplier": self.supplier,
                        "session_id": s.session_id,
                        "reason": outcome,
                    },
                )
        if not built:
            return
        results = await self._broadcast(built)
        for b in built:
            sid = b.snapshot.session_id
            result = results[sid]
            if isinstance(result, TxResult) and result.ok:
                await self.coordinator.on_session_claimed(sid, b.root, result.tx_hash)
                await self._remember(CLAIM, b, height, result.tx_hash)
                metrics.CLAIMS_SUBMITTED.labels(supplier=self.supplier).inc()
                report.claimed.append(sid)
                continue
            await self._not_accepted(CLAIM, b, result, height, report)

    async def _build_claim(self, s: SessionSnapshot, height: int) -> _Built | str | None:
        """The claim of ``s``, or why it is skipped (a str), or None to retry later."""
        sid = s.session_id
        root = await self.trees.seal(sid)
        count, total = digest_count(root), digest_sum(root)
        if count == 0 or total == 0:
            return "empty_tree"
        try:
            service = await self.chain.service(s.service_id, s.session_start_height)
        except (ChainUnavailableError, RelayMinerError) as err:
            log.info("CUPR check skipped", extra={"session_id": sid, "error": str(err)})
            service = None
        if (
            service is not None
            and service.compute_units_per_relay > 0
            and (total != count * service.compute_units_per_relay)
        ):
            return "cupr_mismatch"
        if service is not None:
            try:
                params_at_start = await self._shared_params(s.session_start_height)
                reward = claimed_upokt(total, params_at_start, service.relay_difficulty_target)
            except (ChainUnavailableError, RelayMinerError):
                reward = None
            if reward is not None and reward <= self.config.min_claim_reward_upokt:
                return "unprofitable"
        header = await self._header(s)
        msg = MsgCreateClaim(
            supplier_operator_address=self.supplier, session_header=header, root_hash=root
        )
        return _Built(s, msg, root)

    async def _header(self, s: SessionSnapshot) -> SessionHeader:
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

    # --- proofs -----------------------------------------------------------------------------
    async def _prove(
        self, group: list[SessionSnapshot], end_height: int, height: int, report: PassReport
    ) -> None:
        windows = await self._windows(end_height, height)
        seed_hash = await self.chain.block_hash(windows.proof_seed_height)
        built: list[_Built] = []
        for s in group:
            sid = s.session_id
            if s.state is SessionState.CLAIMED:
                await self.coordinator.on_session_proving(sid)
            outcome = await self._build_proof(s, seed_hash)
            if isinstance(outcome, _Built):
                built.append(outcome)
            elif outcome is SessionState.PROBABILISTIC_PROVED:
                await self.coordinator.on_probabilistic_proved(sid)
                report.proved.append(sid)
            elif outcome in (SessionState.CLAIM_MISSING, SessionState.PROOF_TX_ERROR):
                await self._mark(sid, outcome)
                report.failed[sid] = outcome
        if not built:
            return
        results = await self._broadcast(built)
        for b in built:
            sid = b.snapshot.session_id
            result = results[sid]
            if isinstance(result, TxResult) and result.ok:
                await self.coordinator.on_proof_submitted(sid, result.tx_hash)
                await self._remember(PROOF, b, height, result.tx_hash)
                await self.coordinator.on_session_proved(sid)
                metrics.PROOFS_SUBMITTED.labels(supplier=self.supplier).inc()
                report.proved.append(sid)
                continue
            await self._not_accepted(PROOF, b, result, height, report)

    async def _build_proof(
        self, s: SessionSnapshot, seed_hash: bytes
    ) -> _Built | SessionState | None:
        """The proof of ``s``, or the terminal state it ends in, or None to retry later."""
        sid = s.session_id
        if self.config.pre_proof_claim_check:
            try:
                on_chain = await self.chain.get_claim(self.supplier, sid)
            except ChainUnavailableError:
                on_chain = None
                found = True  # fail open: prove anyway
            else:
                found = on_chain is not None
            if not found:
                return SessionState.CLAIM_MISSING
        root = s.claimed_root_hash or await self.trees.sealed_root(sid)
        if root is None:
            log.warning("claimed root unavailable", extra={"session_id": sid})
            return SessionState.PROOF_TX_ERROR
        header = await self._header(s)
        try:
            service = await self.chain.service(s.service_id, s.session_start_height)
            claim = build_claim(
                supplier_operator_address=self.supplier,
                application_address=header.application_address,
                service_id=header.service_id,
                session_id=header.session_id,
                session_start_block_height=header.session_start_block_height,
                session_end_block_height=header.session_end_block_height,
                root_hash=root,
            )
            reason = proof_requirement(
                claim,
                await self.chain.proof_params(),
                await self._shared_params(s.session_start_height),
                service.relay_difficulty_target,
                seed_hash,
            )
        except (ChainUnavailableError, RelayMinerError) as err:
            log.info(
                "proof requirement unknown, proving", extra={"session_id": sid, "error": str(err)}
            )
            reason = ProofRequirementReason.THRESHOLD
        if reason is ProofRequirementReason.NOT_REQUIRED:
            return SessionState.PROBABILISTIC_PROVED
        sealed_root, proof = await self.trees.prove_closest(sid, proof_path(seed_hash, sid))
        if sealed_root != root:
            log.error("sealed tree does not match the claimed root", extra={"session_id": sid})
            return SessionState.PROOF_TX_ERROR
        msg = MsgSubmitProof(
            supplier_operator_address=self.supplier,
            session_header=header,
            proof=proof.compact().to_bytes(),
        )
        return _Built(s, msg, root)

    async def _not_accepted(
        self,
        phase: str,
        b: _Built,
        result: TxResult | Exception,
        height: int,
        report: PassReport,
    ) -> None:
        """A claim or proof the chain did not accept. A closed window is final; a proof the
        chain does not require ends ``probabilistic_proved``; other rejections are retried
        at later passes up to ``max_submit_attempts``, then end ``*_tx_error`` with the message
        kept for the reconciler's one emergency resend. A transport failure is not counted:
        the session keeps its state and the next pass re-drives it."""
        sid = b.snapshot.session_id
        reason = result.log if isinstance(result, TxResult) else str(result)
        failed = metrics.CLAIMS_FAILED if phase == CLAIM else metrics.PROOFS_FAILED
        failed.labels(supplier=self.supplier, reason=_reason(reason)).inc()
        log.warning(
            f"{phase} not accepted",
            extra={"supplier": self.supplier, "session_id": sid, "reason": reason},
        )
        if not isinstance(result, TxResult):
            return
        if f"{phase} window" in reason:
            closed = (
                SessionState.CLAIM_WINDOW_CLOSED
                if phase == CLAIM
                else SessionState.PROOF_WINDOW_CLOSED
            )
            await self._mark(sid, closed)
            report.failed[sid] = closed
        elif phase == PROOF and "proof not required" in reason:
            await self.coordinator.on_probabilistic_proved(sid)
            report.proved.append(sid)
        else:
            self._attempts[(phase, sid)] += 1
            if self._attempts[(phase, sid)] >= self.config.max_submit_attempts:
                error = (
                    SessionState.CLAIM_TX_ERROR if phase == CLAIM else SessionState.PROOF_TX_ERROR
                )
                await self._mark(sid, error)
                await self._remember(phase, b, height, "")  # "never broadcast": resend once
                report.failed[sid] = error

    async def _mark(self, sid: str, state: SessionState) -> None:
        """Record a terminal failure through the coordinator (its guarded markers)."""
        marker = {
            SessionState.CLAIM_WINDOW_CLOSED: self.coordinator.on_claim_window_closed,
            SessionState.PROOF_WINDOW_CLOSED: self.coordinator.on_proof_window_closed,
            SessionState.CLAIM_TX_ERROR: self.coordinator.on_claim_tx_error,
            SessionState.PROOF_TX_ERROR: self.coordinator.on_proof_tx_error,
            SessionState.CLAIM_MISSING: self.coordinator.on_claim_missing,
        }[state]
        await marker(sid)

    # --- broadcasting -----------------------------------------------------------------------
    async def _broadcast(self, built: Sequence[_Built]) -> dict[str, TxResult | Exception]:
        """One tx for the whole group; if the chain rejects it, each member alone, so every
        session gets its own outcome (a tx is atomic: one bad message fails them all)."""
        results: dict[str, TxResult | Exception] = {}
        await self._check_fence()
        try:
            result = await self.chain.broadcast([b.msg for b in built])
        except ChainUnavailableError as err:
            return {b.snapshot.session_id: err for b in built}
        if result.ok or len(built) == 1:
            return {b.snapshot.session_id: result for b in built}
        for b in built:
            try:
                results[b.snapshot.session_id] = await self.chain.broadcast([b.msg])
            except ChainUnavailableError as err:
                results[b.snapshot.session_id] = err
        return results

    async def _remember(self, phase: str, b: _Built, height: int, tx_hash: str) -> None:
        s = b.snapshot
        entry = RebroadcastEntry(
            s.session_id, b.msg.SerializeToString(), height, tx_hash, tx_hash, s.service_id
        )
        await self.rebroadcasts.put(phase, s.session_end_height, entry)

    # --- inclusion reconciler -----------------------------------------------------------------
    async def _reconcile(self, height: int, report: PassReport) -> None:
        claims_on_chain: dict[str, int] | None = None
        for phase in (CLAIM, PROOF):
            for end_height in await self.rebroadcasts.groups(phase):
                entries = await self.rebroadcasts.entries(phase, end_height)
                if not entries:
                    continue
                if claims_on_chain is None:
                    try:
                        claims_on_chain = {
                            c.session_header.session_id: c.proof_validation_status
                            for c in await self.chain.claims(self.supplier)
                        }
                    except ChainUnavailableError:
                        claims_on_chain = None
                windows = await self._windows(end_height, height)
                close = windows.claim_close if phase == CLAIM else windows.proof_close
                for entry in entries.values():
                    await self._reconcile_one(
                        phase, end_height, entry, claims_on_chain, close, height, report
                    )

    async def _reconcile_one(
        self,
        phase: str,
        end_height: int,
        entry: RebroadcastEntry,
        on_chain: dict[str, int] | None,
        close: int,
        height: int,
        report: PassReport,
    ) -> None:
        sid = entry.session_id
        if on_chain is not None:
            status = on_chain.get(sid)
            included = status is not None if phase == CLAIM else status == VALIDATED
            gone = phase == PROOF and status is None  # settled, expired or never claimed
            if included or gone:
                if included and phase == CLAIM:
                    await self._heal_claim(sid, entry)
                await self.rebroadcasts.delete(phase, end_height, sid)
                return
        if height >= close:  # missing and the window is over
            log.warning(
                "never included",
                extra={"supplier": self.supplier, "phase": phase, "session_id": sid},
            )
            await self.rebroadcasts.delete(phase, end_height, sid)
            return
        if (
            entry.resends < self.config.max_rebroadcasts
            and height >= entry.resend_threshold(close)
            and height < close - self.config.rebroadcast_safety_blocks
        ):
            msg: Msg = MsgCreateClaim() if phase == CLAIM else MsgSubmitProof()
            msg.ParseFromString(entry.message)
            try:
                result = await self.chain.broadcast([msg])
            except ChainUnavailableError as err:
                log.warning("resend failed", extra={"session_id": sid, "error": str(err)})
                return
            entry.resends += 1
            entry.tx_hash = result.tx_hash
            await self.rebroadcasts.put(phase, end_height, entry)
            metrics.REBROADCASTS.labels(supplier=self.supplier, phase=phase).inc()
            report.resent.append(sid)
            log.info(
                "resent",
                extra={
                    "supplier": self.supplier,
                    "phase": phase,
                    "session_id": sid,
                    "ok": result.ok,
                    "log": result.log,
                },
            )

    async def _heal_claim(self, sid: str, entry: RebroadcastEntry) -> None:
        """A claim found on chain for a session we marked ``claim_tx_error`` re-enters the
        proof flow (Go never does this, Q4)."""
        snapshot = await self.store.get(sid)
        if snapshot is None or snapshot.state is not SessionState.CLAIM_TX_ERROR:
            return
        msg = MsgCreateClaim()
        msg.ParseFromString(entry.message)
        await self.coordinator.on_session_claimed(sid, msg.root_hash, entry.tx_hash)
        log.info("claim healed by the reconciler", extra={"session_id": sid})

    # --- cleanup and settlement ---------------------------------------------------------------
    async def _cleanup(self, session_id: str, state: SessionState) -> None:
        """Terminal callback (spec §3.7). The tree goes once nothing can use it any more; the
        ``*_tx_error`` states keep it until its TTL, because the reconciler's resend may still
        land and heal them. The dedup set goes on the clean paths only (failure paths keep it
        until its TTL, for forensics)."""
        self._attempts.pop((CLAIM, session_id), None)
        self._attempts.pop((PROOF, session_id), None)
        if state not in (SessionState.CLAIM_TX_ERROR, SessionState.PROOF_TX_ERROR):
            await self.trees.delete(session_id)
        if state in _SUCCESS_CLEANUP:
            await self.dedup.cleanup_session(session_id)

    async def _record_settlements(self, height: int) -> None:
        """Record how the chain settled each claim (``settlement_outcome``/``_height``). A
        session the miner believed ``proved``/``probabilistic_proved`` but whose claim the
        chain expired (its proof never landed, or did not validate) is corrected to
        ``proof_window_closed``: the window closed without a valid proof on chain."""
        start = self._events_from or height
        if start > height:
            return
        events = await self.chain.events(start, height)
        self._events_from = height + 1
        for ev in events:
            if ev.attributes.get("supplier_operator_address") != self.supplier:
                continue
            sid = ev.attributes.get("session_id", "")
            if ev.type == "EventClaimSettled":
                outcome = "settled_proven"
            elif ev.type == "EventClaimExpired":
                outcome = "expired"
            elif ev.type == "EventClaimDiscarded":
                outcome = "discarded"
            else:
                continue
            try:
                await self.store.update_settlement_metadata(sid, outcome, ev.height)
                if outcome != "expired":
                    continue
                snapshot = await self.store.get(sid)
                if snapshot is not None and snapshot.state.is_success:
                    log.error(
                        "claim expired on chain after the proof was submitted",
                        extra={
                            "supplier": self.supplier,
                            "session_id": sid,
                            "reason": ev.attributes.get("expiration_reason", ""),
                        },
                    )
                    metrics.PROOFS_FAILED.labels(supplier=self.supplier, reason="expired").inc()
                    await self.coordinator.on_proof_window_closed(sid)
            except RelayMinerError:
                continue  # the snapshot expired or was never ours


def _reason(text: str) -> str:
    for known in (
        "claim window",
        "proof window",
        "proof not required",
        "compute units",
        "not found",
        "unavailable",
    ):
        if known in text:
            return known.replace(" ", "_")
    return "rejected"
