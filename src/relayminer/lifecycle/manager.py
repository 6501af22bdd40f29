"""LifecycleManager: drives one supplier's sessions through their claim and proof windows.

One level-triggered pass per block (``docs/lifecycle.md``). A pass reads the supplier's
non-terminal sessions from Redis (so a restart or a failover resumes exactly where the last
owner stopped), decides each one's action from its state and windows
(:mod:`relayminer.lifecycle.rules`), then:

- **proves** claimed sessions once the proof window is open, first (a missed proof is a
  slash) (:mod:`~relayminer.lifecycle.proofs`);
- **claims** the sessions whose claim window is open, batched per session end height
  (:mod:`~relayminer.lifecycle.claims`: seal, tree check, skip or submit);
- marks sessions whose window passed (``claim_window_closed`` / ``proof_window_closed``);
- runs the inclusion reconciler (:mod:`~relayminer.lifecycle.reconciler`);
- records settlement outcomes from the chain's events (:mod:`~relayminer.lifecycle.settlement`).

Quiet blocks: most blocks have nothing due for a supplier (a session waits for its window).
When the last full pass found nothing due and left nothing to reconcile, and no remembered
session is due at the new height, the block's pass is settlement only: no snapshot read, no
fence read, no lifecycle priority. Anything else (a session due, a record for the reconciler,
an error, a change in the live session ids) runs the full pass. Only this replica writes the
supplier's session states while it holds the lease, and each of its own transitions forces a
full pass, so the remembered snapshots are what a full read would return, as far as the rules
are concerned. New sessions are the one change made elsewhere (by the relay worker): the ids in
the live state indexes are re-read (one round trip) when the worker says it created one
(:meth:`LifecycleManager.sessions_created`), at the block a session period's claim window
opens, and at least every ``quiet_recheck_blocks``. A replica owning 1,000 suppliers so spends
next to nothing on the blocks where nothing is due (``docs/lifecycle.md``, "Scale").

Trees built ahead (journal layout): a quiet block builds, in memory, the trees of ACTIVE
sessions whose claim window is not open yet, once their grace period is over **or** once a
whole block went by without the worker mining a relay of theirs
(:meth:`LifecycleManager.relays_mined`; this process's worker is the supplier's only one while
it holds the lease). The claim then only seals them. A relay mined later drops the tree (the
next quiet block or the claim builds it again), and the seal's leaf count check catches any
relay this process did not see. A session receiving relays every block is built after its
grace period, as before; one that went quiet is built while the replica has time.

A chain's refusal is decided on its classified reason alone
(:meth:`~relayminer.lifecycle.context.SupplierContext.not_accepted`, ``docs/chain.md``).

Deliberate fixes over the Go miner: every result is keyed by session id, never by list
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
from collections.abc import Awaitable, Callable, Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from relayminer import metrics
from relayminer.chain.base import Block, Chain, ChainUnavailableError
from relayminer.errors import LeaseLostError, RelayMinerError
from relayminer.keys import KeyBuilder
from relayminer.lifecycle.backlog import StreamBacklog
from relayminer.lifecycle.claims import ClaimPhase
from relayminer.lifecycle.config import LifecycleConfig, PassReport
from relayminer.lifecycle.context import SupplierContext, failed_writes
from relayminer.lifecycle.proofs import ProofPhase
from relayminer.lifecycle.rebroadcast import RebroadcastStore
from relayminer.lifecycle.reconciler import InclusionReconciler
from relayminer.lifecycle.rules import Action, next_action
from relayminer.lifecycle.settlement import SettlementRecorder
from relayminer.protocol.windows import (
    SharedParams,
    claim_window_open_height,
    session_end_height,
)
from relayminer.runtime.aio import wait_or_stop
from relayminer.runtime.leases import Fence
from relayminer.runtime.priority import LifecyclePriority
from relayminer.runtime.tree_builder import TreeBuilder
from relayminer.sessions.coordinator import SessionCoordinator
from relayminer.sessions.dedup import DeduplicatorConfig, RedisDeduplicator
from relayminer.sessions.model import SessionSnapshot, SessionState
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig
from relayminer.smst.layout import DEFAULT_LAYOUT, SMSTLayout
from relayminer.smst.session_trees import open_session_trees

__all__ = ["LifecycleConfig", "LifecycleManager", "PassReport"]

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
_TX_ERRORS = (SessionState.CLAIM_TX_ERROR, SessionState.PROOF_TX_ERROR)
#: the share of a block that building trees ahead may take before it gives way
_AHEAD_SHARE = 0.8


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
        smst_layout: SMSTLayout = DEFAULT_LAYOUT,
        priority: LifecyclePriority | None = None,
        tree_builder: TreeBuilder | None = None,
    ) -> None:
        self.supplier = supplier
        self._priority = priority
        self.chain = chain
        self.keys = keys or KeyBuilder.for_client(redis)
        self.config = config or LifecycleConfig()
        self._redis = redis
        self.store = RedisSessionStore(
            redis,
            SessionStoreConfig(supplier, self.keys.miner_sessions_prefix(), session_ttl_seconds),
            fence=fence,
        )
        self.coordinator = SessionCoordinator(self.store, supplier)
        self.coordinator.set_on_session_terminal_callback(self._cleanup)
        self.trees = open_session_trees(
            smst_layout,
            redis,
            supplier,
            keys=self.keys,
            ttl_seconds=session_ttl_seconds,
            fence=fence,
            builder=tree_builder,
        )
        self.dedup = RedisDeduplicator.for_supplier(
            redis, DeduplicatorConfig(self.keys.miner_dedup_prefix()), supplier
        )
        self.rebroadcasts = RebroadcastStore(
            redis,
            supplier,
            keys=self.keys,
            ttl_seconds=self.config.rebroadcast_ttl_seconds,
            fence=fence,
        )
        self._fence = fence
        self.context = SupplierContext(
            supplier,
            chain,
            self.config,
            self.store,
            self.coordinator,
            self.trees,
            self.rebroadcasts,
            self._check_fence,
            backlog=(
                StreamBacklog(redis, supplier, self.keys)
                if self.config.claim_waits_for_stream
                else None
            ),
        )
        self.claims = ClaimPhase(self.context)
        self.proofs = ProofPhase(self.context)
        self.reconciler = InclusionReconciler(self.context)
        self.settlement = SettlementRecorder(self.context)
        self._last_height = 0
        self._on_pass = on_pass
        #: the live session ids and snapshots of the last full pass, when it found nothing due
        #: and left nothing to reconcile (None: the next pass is a full one)
        self._quiet: tuple[list[str], list[SessionSnapshot]] | None = None
        #: the height the live ids were last read at, and whether the worker created a session
        #: since (module docstring, "Quiet blocks")
        self._ids_read_at = 0
        self._ids_stale = True
        #: sessions that ended in the current pass, whose keys :meth:`_drop_ended` drops
        self._ended: list[tuple[str, SessionState]] = []
        #: the height and loop time of the last tick, and the seconds per block seen from them
        self._tick_seen: tuple[int, float] | None = None
        self._block_seconds = 1.0
        #: trees built ahead (docs/lifecycle.md, "Trees built ahead"): the first tick's height,
        #: the tick height at which the worker last mined relays of a session (entries older
        #: than a block are dropped: absent means "not since the first tick"), and the tick
        #: height at which a session's tree was built ahead
        self._first_tick: int | None = None
        #: the last full pass left sessions claimed (or being claimed or proved): proofs may be
        #: owed, so its passes go first (:meth:`LifecyclePriority.lifecycle_pass`). Not only
        #: from the proof window on: a pass queued earlier is not promoted when the window
        #: opens, and at 1,000 suppliers such passes queued behind claim passes until their
        #: proof windows closed (docs/lifecycle.md, "Priority and scale")
        self._claims_on_chain = False
        self._mined_at: dict[str, int] = {}
        self._built_ahead: dict[str, int] = {}

    # --- loop -------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """One pass per new block until ``stop`` is set. Heights are coalesced: a slow pass is
        followed by one pass at the newest height (the rules are level-triggered). With a
        ``priority``, relay mining yields while the pass runs
        (:mod:`relayminer.runtime.priority`)."""
        while not stop.is_set():
            block = await self._next_block(stop)
            if block is None or block.height <= self._last_height:
                continue
            try:
                await self.tick(block.height)
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
    async def tick(self, height: int) -> PassReport:
        """The run loop's pass at ``height``: a quiet one when nothing can be due (module
        docstring, "Quiet blocks"), else :meth:`pass_at` with the lifecycle priority (relay
        workers wait between batches meanwhile)."""
        self._observe_block_time(height)
        await self._mark_stream(height)
        quiet = await self._quiet_pass(height)
        if quiet is not None:
            return quiet
        if self._priority is None:
            return await self.pass_at(height)
        async with self._priority.lifecycle_pass(urgent=self._claims_on_chain):
            # A pass that queued for its slot runs at the newest height: rules decided at a
            # stale one would build claims whose window has passed meanwhile (CPU lost to
            # sessions that cannot make it, on a saturated replica).
            return await self.pass_at(await self.context.height_now(height))

    async def pass_at(self, height: int) -> PassReport:
        """Run every rule at ``height`` (the newest committed block)."""
        report = PassReport(height)
        await self._check_fence()
        self.context.params.clear()
        self._quiet = None
        self._ids_stale, self._ids_read_at = False, height
        ids = await self.store.ids_by_states(_LIVE_STATES)
        sessions = await self.store.get_by_states(_LIVE_STATES, ids)
        claims: dict[int, list[SessionSnapshot]] = defaultdict(list)
        proofs: dict[int, list[SessionSnapshot]] = defaultdict(list)
        closed: dict[SessionState, list[str]] = defaultdict(list)
        acted = False
        for s in sessions:
            acted |= await self._decide(s, height, claims, proofs, closed, report)
        for state, sids in closed.items():  # windows that passed: one round trip per state
            await self._guarded(report, self._close(sids, state, report))
        # Proofs first: a proof missed is a slash, a claim missed is a lost reward.
        for end_height, group in sorted(proofs.items()):
            for batch in self._batches(group, self.config.batch_proofs):
                await self._guarded(report, self.proofs.run(batch, end_height, height, report))
        for _end_height, group in sorted(claims.items()):
            for batch in self._batches(group, self.config.batch_claims):
                await self._guarded(report, self.claims.run(batch, height, report))
        await self._guarded(report, self.reconciler.run(height, report))
        await self._guarded(report, self.settlement.run(height))
        if not (acted or self.reconciler.examined or report.errors):
            self._quiet = (ids, sessions)
        self._claims_on_chain = bool(report.claimed) or any(
            s.state is not SessionState.ACTIVE for s in sessions
        )
        for state in _LIVE_STATES:
            count = sum(1 for s in sessions if s.state is state)
            metrics.SESSIONS_BY_STATE.labels(supplier=self.supplier, state=state.value).set(count)
        await self._finish(report)
        return report

    def relays_mined(self, session_ids: Iterable[str]) -> None:
        """The relay worker mined relays of these sessions (the Miner wires it): their trees are
        not built ahead until a whole block goes by without one, and a tree built ahead before
        is built again (module docstring, "Trees built ahead")."""
        height = self._tick_seen[0] if self._tick_seen is not None else 0
        for sid in session_ids:
            self._mined_at[sid] = height
            self._built_ahead.pop(sid, None)  # its tree may lack these relays

    def sessions_created(self) -> None:
        """The relay worker created a session of this supplier: the next pass re-reads the live
        session ids (module docstring, "Quiet blocks")."""
        self._ids_stale = True

    async def _quiet_pass(self, height: int) -> PassReport | None:
        """The pass at ``height`` when nothing can be due (module docstring, "Quiet blocks"):
        settlement only. None, having done nothing, when a full pass is needed."""
        if self._quiet is None or self.rebroadcasts.pending():
            return None
        ids, sessions = self._quiet
        self.context.params.clear()
        try:
            if await self._ids_may_have_changed(height):
                self._ids_stale, self._ids_read_at = False, height
                if await self.store.ids_by_states(_LIVE_STATES) != ids:
                    return None
            for s in sessions:
                if await self._action(s, height) is not Action.NONE:
                    return None
        except ChainUnavailableError:
            return None  # the full pass records it
        report = PassReport(height, quiet=True)
        await self._guarded(report, self._prebuild(sessions, height))
        await self._guarded(report, self.settlement.run(height))
        await self._finish(report)
        return report

    async def _prebuild(self, sessions: list[SessionSnapshot], height: int) -> None:
        """In a quiet block, build the trees of ACTIVE sessions whose claim window is not open
        yet, when their grace period is over or no relay of theirs was mined for a whole block
        (module docstring, "Trees built ahead")."""
        if not self.trees.builds_ahead:
            return
        # Relays are recorded at the tick height they were mined after (0: before the first
        # tick). Mined at a height <= height - 2: the whole block since the last tick went by
        # without one, which this loop saw if its first tick was before this one.
        quiet_since = height - 2
        watched = self._first_tick is not None and self._first_tick < height
        active = {s.session_id for s in sessions if s.state is SessionState.ACTIVE}
        self._built_ahead = {sid: h for sid, h in self._built_ahead.items() if sid in active}
        ahead: list[tuple[int, str]] = []
        for s in sessions:
            sid, end = s.session_id, s.session_end_height
            if sid not in active:
                continue
            if sid in self._built_ahead:
                continue  # no relay of it was mined since
            mined = self._mined_at.get(sid, 0)
            params = await self.context.shared_params(end)
            windows = await self.context.windows(end, height)
            if height >= windows.claim_open:
                continue
            over = end + params.grace_period_end_offset_blocks <= height
            if over or (watched and mined <= quiet_since):
                ahead.append((end, sid))
        if not ahead:
            return
        todo = [sid for _end, sid in sorted(ahead)]  # the nearest claims first
        for sid in todo:
            self.trees.forget(sid)  # built ahead before relays of it were mined: stale
        if self._priority is None:
            built_now = await self.trees.prebuild_many(todo)
        else:
            # In turns with the other suppliers, and only until about the next block: its pass
            # may have claims due, and the claim builds whatever is not built by then.
            deadline = asyncio.get_running_loop().time() + _AHEAD_SHARE * self._block_seconds
            async with self._priority.building_ahead(deadline) as turn:
                built_now = await self.trees.prebuild_many(todo, deadline=deadline) if turn else []
        for sid in built_now:
            self._built_ahead[sid] = height

    def _observe_block_time(self, height: int) -> None:
        """Keep the seconds per block as this loop sees them (the budget of trees built ahead)."""
        now = asyncio.get_running_loop().time()
        if self._first_tick is None:
            self._first_tick = height
        if self._tick_seen is not None and height > self._tick_seen[0]:
            seen_height, seen_at = self._tick_seen
            self._block_seconds = (now - seen_at) / (height - seen_height)
        self._tick_seen = (height, now)

    async def _mark_stream(self, height: int) -> None:
        """At the first pass after a session period's grace period, remember the stream's
        newest relay: its claims wait for the relays up to it (:mod:`~.backlog`)."""
        backlog = self.context.backlog
        if backlog is None:
            return
        try:
            params = await self.context.shared_params(None)
        except ChainUnavailableError:
            return
        previous_end = _previous_session_end(params, height)
        if previous_end > 0 and height > previous_end + params.grace_period_end_offset_blocks:
            await backlog.mark(previous_end)

    async def _ids_may_have_changed(self, height: int) -> bool:
        """Whether the quiet pass at ``height`` re-reads the live ids: the worker created a
        session, a claim window opens (a session written by another process shows up before its
        claim is due), or ``quiet_recheck_blocks`` passed."""
        if self._ids_stale or height - self._ids_read_at >= self.config.quiet_recheck_blocks:
            return True
        params = await self.context.shared_params(None)
        previous_end = _previous_session_end(params, height)
        return previous_end > 0 and height == claim_window_open_height(params, previous_end)

    async def _finish(self, report: PassReport) -> None:
        await self._drop_ended()
        self._last_height = max(self._last_height, report.height)
        if self._mined_at:  # older than a block: the same as absent at the next tick
            horizon = self._last_height - 2
            self._mined_at = {sid: h for sid, h in self._mined_at.items() if h > horizon}
        if report.errors:
            log.warning(
                "lifecycle pass had errors",
                extra={
                    "supplier": self.supplier,
                    "height": report.height,
                    "errors": report.errors[:5],
                },
            )
        if self._on_pass is not None:
            outcome = self._on_pass(report)
            if outcome is not None:
                await outcome

    async def _action(self, s: SessionSnapshot, height: int) -> Action:
        windows = await self.context.windows(s.session_end_height, height)
        return next_action(
            s.state,
            s.claim_tx_hash,
            s.proof_tx_hash,
            height,
            windows,
            safety_blocks=self.config.submit_safety_blocks,
        )

    async def _decide(
        self,
        s: SessionSnapshot,
        height: int,
        claims: dict[int, list[SessionSnapshot]],
        proofs: dict[int, list[SessionSnapshot]],
        closed: dict[SessionState, list[str]],
        report: PassReport,
    ) -> bool:
        """File ``s`` into a claim, proof or window-closed group, or apply its state-only
        transition; whether it had anything due."""
        try:
            action = await self._action(s, height)
        except ChainUnavailableError as err:
            report.errors.append(f"{s.session_id}: params unavailable: {err}")
            return True
        try:
            if action is Action.CLAIM:
                claims[s.session_end_height].append(s)
            elif action is Action.PROVE:
                proofs[s.session_end_height].append(s)
            elif action is Action.MARK_PROVED:
                await self.coordinator.on_session_proved(s.session_id)
                report.proved.append(s.session_id)
            elif action in (Action.CLAIM_WINDOW_CLOSED, Action.PROOF_WINDOW_CLOSED):
                closed[SessionState(action.value)].append(s.session_id)
        except LeaseLostError:
            raise
        except RelayMinerError as err:
            report.errors.append(f"{s.session_id}: {err}")
        return action is not Action.NONE

    async def _close(self, sids: list[str], state: SessionState, report: PassReport) -> None:
        """End the sessions whose ``state`` window passed (one round trip)."""
        outcomes = await self.coordinator.on_sessions_ended(sids, state)
        for sid in sids:
            if outcomes[sid] is None:
                report.failed[sid] = state
        failed_writes(outcomes, report)

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

    async def _check_fence(self) -> None:
        """Refuse to act for a supplier whose lease this replica no longer holds (the seal and
        every relay write are fenced atomically in their scripts; this guards the chain)."""
        if self._fence is None:
            return
        current = await self._redis.get(self._fence.key)
        if current != self._fence.token.encode():
            raise LeaseLostError(f"lease of {self.supplier} is no longer ours")

    # --- cleanup ------------------------------------------------------------------------------
    async def _cleanup(self, session_id: str, state: SessionState) -> None:
        """Terminal callback: the session's keys are dropped at the end of the pass, with every
        other session that ended in it (:meth:`_drop_ended`: one round trip per kind)."""
        self.context.forget(session_id)
        self._ended.append((session_id, state))

    async def _drop_ended(self) -> None:
        """Drop the keys of the sessions that ended in this pass. A tree goes once nothing can
        use it any more; the ``*_tx_error`` states keep it until its TTL, because the
        reconciler's resend may still land and heal them. The dedup set goes on the clean paths
        only (failure paths keep it until its TTL, for forensics). A failure is logged: the keys
        then expire with their TTL."""
        ended, self._ended = self._ended, []
        for sid, _state in ended:
            self._built_ahead.pop(sid, None)
        trees = [sid for sid, st in ended if st not in _TX_ERRORS]
        dedup = [sid for sid, st in ended if st in _SUCCESS_CLEANUP]
        try:
            if trees:
                await self.trees.delete_many(trees)
            if dedup:
                await self.dedup.cleanup_sessions(dedup)
        except (RelayMinerError, RedisError, OSError) as err:
            log.warning(
                "failed to drop the keys of ended sessions (they expire with their TTL)",
                extra={"supplier": self.supplier, "sessions": len(ended), "error": repr(err)},
            )


def _previous_session_end(params: SharedParams, height: int) -> int:
    """The end height of the session period before the one ``height`` is in (0: none): the
    newest period whose grace period and claim window can have begun at ``height``."""
    return session_end_height(params, height) - params.num_blocks_per_session
