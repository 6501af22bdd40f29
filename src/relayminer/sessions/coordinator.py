"""SessionCoordinator: every session transition of one supplier goes through here.

It wraps a :class:`~relayminer.sessions.store.SessionStore` (``docs/exactly-once.md``):

- relays are counted by one atomic step, :meth:`SessionCoordinator.account_batch` (the relay
  worker's batches) -- ``on_relay_processed`` is the same step on a batch of one relay; it
  creates a session on its first relay, exactly once under any concurrency, and only the creator
  fires the *created* callback; a late relay for a terminal session is skipped (not an error);
- every metric of that step moves here (sessions created, dedup marks, hits and misses);
- terminal transitions fire the *terminal* callback; three markers are guarded so they never
  overwrite a better outcome (a claim or proof another replica already made);
- the lifecycle moves a whole claim or proof group at once (``on_sessions_*``): one round trip
  on a Redis store, each session with its own outcome (the per-session markers on any other).

Callbacks may be plain functions or coroutine functions. A failing callback is logged, never
propagated: the transition it reports has already happened in Redis.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from relayminer import metrics
from relayminer.errors import (
    ClosedError,
    RelayMinerError,
    SessionNotFoundError,
    SessionTerminalError,
    StoreError,
)
from relayminer.sessions.accounting import (
    STATUS_MISSING,
    STATUS_TERMINAL,
    LegacySnapshot,
    SessionOutcome,
    SessionRelays,
    StreamAck,
)
from relayminer.sessions.model import (
    SessionSnapshot,
    SessionState,
    require_compute_units,
    require_id,
    require_session_id,
)
from relayminer.sessions.store import RedisSessionStore, SessionStore, StateWrite

log = logging.getLogger(__name__)

#: the terminal states a whole group may be moved to at once (no guard read needed)
_GROUP_ENDS = (
    SessionState.PROBABILISTIC_PROVED,
    SessionState.CLAIM_SKIPPED,
    SessionState.CLAIM_WINDOW_CLOSED,
    SessionState.PROOF_WINDOW_CLOSED,
)

CreatedCallback = Callable[[SessionSnapshot], Awaitable[Any] | Any]
TerminalCallback = Callable[[str, SessionState], Awaitable[Any] | Any]


async def _call(callback: Callable[..., Any], *args: Any) -> None:
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("session callback failed", extra={"callback": repr(callback)})


def _check_metadata(
    supplier_address: object,
    service_id: object,
    application_address: object,
    start_height: object,
    end_height: object,
) -> None:
    for name, value in (
        ("supplier_address", supplier_address),
        ("service_id", service_id),
        ("application_address", application_address),
    ):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    for name, value in (("session_start_height", start_height), ("session_end_height", end_height)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


class SessionCoordinator:
    """Creation, relay accounting and state transitions of one supplier's sessions."""

    def __init__(self, store: SessionStore, supplier_address: str) -> None:
        if not isinstance(store, SessionStore):
            raise TypeError(f"store must implement SessionStore, got {type(store).__name__}")
        self.store = store
        self.supplier_address = require_id("supplier_address", supplier_address)
        self._on_created: CreatedCallback | None = None
        self._on_terminal: TerminalCallback | None = None
        self._closed = False

    def set_on_session_created_callback(self, cb: CreatedCallback | None) -> None:
        self._on_created = cb

    def set_on_session_terminal_callback(self, cb: TerminalCallback | None) -> None:
        self._on_terminal = cb

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("session coordinator is closed")

    # --- creation and accounting --------------------------------------------------------------
    def _redis_store(self) -> RedisSessionStore:
        if not isinstance(self.store, RedisSessionStore):
            raise TypeError("batch accounting needs a RedisSessionStore")
        return self.store

    async def account_batch(
        self,
        sessions: Sequence[SessionRelays],
        *,
        dedup_ttl_seconds: int | None = None,
        ack: StreamAck | None = None,
    ) -> list[SessionOutcome]:
        """Count relays of several sessions in one atomic step (dedup, creation, counters, and
        with ``ack`` the stream's dead letters and acks), then move the metrics and fire the
        created callback of each session this step created.

        Raises :class:`~relayminer.sessions.accounting.ComputeUnitsOverflowError` or
        :class:`~relayminer.errors.LeaseLostError` with nothing written."""
        self._check_open()
        store = self._redis_store()
        for _attempt in range(3):
            try:
                outcomes = await store.accounting.run(
                    sessions, dedup_ttl_seconds=dedup_ttl_seconds, ack=ack
                )
                break
            except LegacySnapshot as legacy:  # an older miner's JSON snapshot: migrate, rerun
                await store.migrate_legacy(legacy.session_id)
        else:
            raise StoreError("legacy session keys kept reappearing during accounting")
        await self._after_accounting(sessions, outcomes)
        return outcomes

    async def _after_accounting(
        self, sessions: Sequence[SessionRelays], outcomes: Sequence[SessionOutcome]
    ) -> None:
        for relays, outcome in zip(sessions, outcomes, strict=True):
            if relays.dedup and outcome.status not in (STATUS_TERMINAL, STATUS_MISSING):
                metrics.DEDUP_MARKED.inc(outcome.counted)
                metrics.DEDUP_MISSES.inc(outcome.counted)
                metrics.DEDUP_HITS.inc(outcome.duplicates)
            if outcome.created and relays.create is not None:
                service = relays.create.service_id
                metrics.SESSIONS_CREATED.labels(
                    supplier=self.supplier_address, service_id=service
                ).inc()
                metrics.SNAPSHOTS_SAVED.labels(supplier=self.supplier_address).inc()
                callback = self._on_created
                if callback is not None:
                    await _call(callback, relays.create)

    async def on_relay_processed(
        self,
        session_id: str,
        compute_units: int,
        supplier_address: str,
        service_id: str,
        application_address: str,
        session_start_height: int,
        session_end_height: int,
    ) -> None:
        """Count one relay, creating the session first if this is its first relay: the
        accounting step of :meth:`account_batch` on a batch of one (no relay hash, so no dedup).

        Missing metadata (empty supplier or service) cannot create a session: the relay then
        fails with :class:`SessionNotFoundError`. A terminal session skips the relay.
        """
        self._check_open()
        sid = require_session_id(session_id)
        require_compute_units(compute_units)
        _check_metadata(
            supplier_address,
            service_id,
            application_address,
            session_start_height,
            session_end_height,
        )
        create: SessionSnapshot | None = None
        if supplier_address and service_id:
            create = SessionSnapshot(
                session_id=sid,
                supplier_operator_address=supplier_address,
                service_id=service_id,
                application_address=application_address,
                session_start_height=session_start_height,
                session_end_height=session_end_height,
                state=SessionState.ACTIVE,
            )
            create.validate()
        else:
            log.warning(
                "missing metadata to create a session: counting only if it exists",
                extra={"session_id": sid},
            )
        if not isinstance(self.store, RedisSessionStore):
            await self._count_with_protocol(sid, compute_units, create)
            return
        relays = SessionRelays(sid, [compute_units], dedup=False, create=create)
        (outcome,) = await self.account_batch([relays])
        if outcome.status == STATUS_MISSING:
            raise SessionNotFoundError(sid)
        if outcome.status == STATUS_TERMINAL:
            log.info("late relay for a terminal session skipped", extra={"session_id": sid})

    async def _count_with_protocol(
        self, sid: str, compute_units: int, create: SessionSnapshot | None
    ) -> None:
        """The same semantics on any other :class:`SessionStore` (create, then increment)."""
        if create is not None and await self.store.create_if_absent(create):
            await self._after_accounting(
                [SessionRelays(sid, [compute_units], dedup=False, create=create)],
                [SessionOutcome(sid, True, 0, 0, 1)],
            )
        try:
            await self.store.increment_relay_count(sid, compute_units)
        except SessionTerminalError:
            log.info("late relay for a terminal session skipped", extra={"session_id": sid})

    async def on_session_created(
        self,
        session_id: str,
        supplier_address: str,
        service_id: str,
        application_address: str,
        start_height: int,
        end_height: int,
    ) -> None:
        """Create the session (state active, counters 0) unless it exists. Only the caller that
        created it fires the created callback; a repeat is a silent no-op."""
        self._check_open()
        snapshot = SessionSnapshot(
            session_id=session_id,
            supplier_operator_address=supplier_address,
            service_id=service_id,
            application_address=application_address,
            session_start_height=start_height,
            session_end_height=end_height,
            state=SessionState.ACTIVE,
        )
        if not await self.store.create_if_absent(snapshot):
            return
        metrics.SESSIONS_CREATED.labels(supplier=self.supplier_address, service_id=service_id).inc()
        callback = self._on_created
        if callback is not None:
            await _call(callback, snapshot)

    # --- claim and proof ----------------------------------------------------------------------
    async def on_session_claiming(self, session_id: str) -> None:
        """The claim window opened: the claim is being built (not terminal, no callback)."""
        self._check_open()
        await self.store.update_state(require_id("session_id", session_id), SessionState.CLAIMING)

    async def on_session_proving(self, session_id: str) -> None:
        """The proof window opened: the proof is being built (not terminal, no callback)."""
        self._check_open()
        await self.store.update_state(require_id("session_id", session_id), SessionState.PROVING)

    async def _require(self, session_id: str) -> SessionSnapshot:
        sid = require_id("session_id", session_id)
        snapshot = await self.store.get(sid)
        if snapshot is None:
            raise SessionNotFoundError(sid)
        return snapshot

    async def on_session_claimed(
        self, session_id: str, claim_root_hash: bytes, claim_tx_hash: str
    ) -> None:
        """Record the claim: root, tx hash and state ``claimed`` (not terminal)."""
        self._check_open()
        if not isinstance(claim_root_hash, bytes):
            raise TypeError("claim_root_hash must be bytes")
        if not isinstance(claim_tx_hash, str):
            raise TypeError("claim_tx_hash must be a str")
        if isinstance(self.store, RedisSessionStore):
            # One script: the read and the write are atomic and fenced.
            sid = require_session_id(session_id)
            await self.store.record_claim(sid, claim_root_hash, claim_tx_hash)
            return
        snapshot = await self._require(session_id)
        snapshot.claimed_root_hash = claim_root_hash
        snapshot.claim_tx_hash = claim_tx_hash
        snapshot.state = SessionState.CLAIMED
        await self.store.save(snapshot)

    async def on_proof_submitted(self, session_id: str, proof_tx_hash: str) -> None:
        """Record the proof's tx hash; the state is left as it is (``proving``)."""
        self._check_open()
        if not isinstance(proof_tx_hash, str):
            raise TypeError("proof_tx_hash must be a str")
        if isinstance(self.store, RedisSessionStore):
            sid = require_session_id(session_id)
            await self.store.record_proof_tx(sid, proof_tx_hash)
            return
        snapshot = await self._require(session_id)
        snapshot.proof_tx_hash = proof_tx_hash
        await self.store.save(snapshot)

    # --- a group at once ---------------------------------------------------------------------
    async def _write_group(
        self,
        writes: Sequence[StateWrite],
        one: Callable[[StateWrite], Awaitable[None]],
    ) -> dict[str, RelayMinerError | None]:
        """``writes`` in one round trip on a Redis store; each through ``one`` on any other."""
        self._check_open()
        if isinstance(self.store, RedisSessionStore):
            return await self.store.write_states(writes)
        out: dict[str, RelayMinerError | None] = {}
        for w in writes:
            try:
                await one(w)
                out[w.session_id] = None
            except RelayMinerError as err:
                out[w.session_id] = err
        return out

    async def _move_group(
        self, session_ids: Sequence[str], state: SessionState
    ) -> dict[str, RelayMinerError | None]:
        """A state-only transition of a group (no callback): per session None, or its error."""
        writes = [StateWrite(require_id("session_id", s), state) for s in session_ids]
        return await self._write_group(
            writes, lambda w: self.store.update_state(w.session_id, state)
        )

    async def on_sessions_claiming(
        self, session_ids: Sequence[str]
    ) -> dict[str, RelayMinerError | None]:
        """:meth:`on_session_claiming` of a group: per session None, or its error."""
        return await self._move_group(session_ids, SessionState.CLAIMING)

    async def on_sessions_proving(
        self, session_ids: Sequence[str]
    ) -> dict[str, RelayMinerError | None]:
        """:meth:`on_session_proving` of a group: per session None, or its error."""
        return await self._move_group(session_ids, SessionState.PROVING)

    async def on_sessions_claimed(
        self, claims: Sequence[tuple[str, bytes, str]]
    ) -> dict[str, RelayMinerError | None]:
        """:meth:`on_session_claimed` of a group of ``(session id, root, claim tx hash)``: per
        session None, or its error."""
        writes: list[StateWrite] = []
        by_id: dict[str, tuple[bytes, str]] = {}
        for session_id, root, tx_hash in claims:
            if not isinstance(root, bytes) or not isinstance(tx_hash, str):
                raise TypeError("a claim is (session id: str, root: bytes, tx hash: str)")
            sid = require_session_id(session_id)
            fields: tuple[tuple[str, bytes | str], ...] = (("claimed_root_hash", root),)
            if tx_hash:
                fields += (("claim_tx_hash", tx_hash),)
            writes.append(StateWrite(sid, SessionState.CLAIMED, fields))
            by_id[sid] = (root, tx_hash)
        return await self._write_group(
            writes, lambda w: self.on_session_claimed(w.session_id, *by_id[w.session_id])
        )

    async def on_sessions_proved(self, proofs: Sequence[tuple[str, str]]) -> None:
        """Record a group of accepted proofs, ``(session id, proof tx hash)``: the tx hash and
        state ``proved`` in one write each, all in one round trip. Like
        :meth:`on_session_proved`, a store error is logged, not raised, and the terminal
        callback runs for every session: the proofs are on their way whatever Redis says."""
        callback = self._on_terminal
        writes = []
        tx_hashes: dict[str, str] = {}
        for session_id, tx_hash in proofs:
            if not isinstance(tx_hash, str):
                raise TypeError("proof_tx_hash must be a str")
            sid = require_session_id(session_id)
            fields: tuple[tuple[str, bytes | str], ...] = (
                (("proof_tx_hash", tx_hash),) if tx_hash else ()
            )
            writes.append(StateWrite(sid, SessionState.PROVED, fields))
            tx_hashes[sid] = tx_hash

        async def one(w: StateWrite) -> None:
            await self.on_proof_submitted(w.session_id, tx_hashes[w.session_id])
            await self.store.update_state(w.session_id, SessionState.PROVED)

        outcomes: dict[str, RelayMinerError | None]
        try:
            outcomes = await self._write_group(writes, one)
        except (StoreError, OSError) as group_err:
            outcomes = {w.session_id: StoreError(str(group_err)) for w in writes}
        for w in writes:
            failure = outcomes[w.session_id]
            if failure is not None:
                log.warning(
                    "failed to record proved state",
                    extra={"session_id": w.session_id, "error": str(failure)},
                )
            if callback is not None:
                await _call(callback, w.session_id, SessionState.PROVED)

    async def on_sessions_ended(
        self, session_ids: Sequence[str], state: SessionState
    ) -> dict[str, RelayMinerError | None]:
        """End a group in ``probabilistic_proved``, ``claim_skipped`` or a ``*_window_closed``
        state (the unguarded terminal markers) in one round trip; the terminal callback runs for
        each session written."""
        if state not in _GROUP_ENDS:
            raise ValueError(f"{state.value} is not ended for a whole group")
        callback = self._on_terminal
        writes = [StateWrite(require_id("session_id", s), state) for s in session_ids]
        outcomes = await self._write_group(
            writes, lambda w: self.store.update_state(w.session_id, state)
        )
        if callback is not None:
            for sid, err in outcomes.items():
                if err is None:
                    await _call(callback, sid, state)
        return outcomes

    # --- terminal transitions -----------------------------------------------------------------
    async def _terminal(self, session_id: str, state: SessionState) -> None:
        callback = self._on_terminal  # captured before any write
        sid = require_id("session_id", session_id)
        await self.store.update_state(sid, state)
        if callback is not None:
            await _call(callback, sid, state)

    async def on_session_proved(self, session_id: str) -> None:
        """Mark ``proved``. Unlike the other markers a store error is logged, not raised, and
        the terminal callback still runs: the proof is on chain whatever Redis says."""
        self._check_open()
        callback = self._on_terminal
        sid = require_id("session_id", session_id)
        try:
            await self.store.update_state(sid, SessionState.PROVED)
        except RelayMinerError as err:
            log.warning(
                "failed to record proved state", extra={"session_id": sid, "error": str(err)}
            )
        if callback is not None:
            await _call(callback, sid, SessionState.PROVED)

    async def on_claim_window_closed(self, session_id: str) -> None:
        self._check_open()
        await self._terminal(session_id, SessionState.CLAIM_WINDOW_CLOSED)

    async def on_proof_window_closed(self, session_id: str) -> None:
        self._check_open()
        await self._terminal(session_id, SessionState.PROOF_WINDOW_CLOSED)

    async def on_probabilistic_proved(self, session_id: str) -> None:
        self._check_open()
        await self._terminal(session_id, SessionState.PROBABILISTIC_PROVED)

    async def on_claim_skipped(self, session_id: str) -> None:
        self._check_open()
        await self._terminal(session_id, SessionState.CLAIM_SKIPPED)

    async def _current(self, session_id: str) -> SessionSnapshot | None:
        try:
            return await self.store.get(session_id)
        except RelayMinerError as err:
            log.warning(
                "guard read failed, marking anyway",
                extra={"session_id": session_id, "error": str(err)},
            )
            return None

    async def on_claim_tx_error(self, session_id: str) -> None:
        """Mark ``claim_tx_error`` unless a claim is already recorded (by any replica)."""
        self._check_open()
        sid = require_id("session_id", session_id)
        current = await self._current(sid)
        if current is not None and (current.state is SessionState.CLAIMED or current.claim_tx_hash):
            return
        await self._terminal(sid, SessionState.CLAIM_TX_ERROR)

    async def on_claim_missing(self, session_id: str) -> None:
        """Mark ``claim_missing`` unless the session already succeeded."""
        self._check_open()
        sid = require_id("session_id", session_id)
        current = await self._current(sid)
        if current is not None and current.state.is_success:
            return
        await self._terminal(sid, SessionState.CLAIM_MISSING)

    async def on_proof_tx_error(self, session_id: str) -> None:
        """Mark ``proof_tx_error`` unless it succeeded or a proof tx is already recorded."""
        self._check_open()
        sid = require_id("session_id", session_id)
        current = await self._current(sid)
        if current is not None and (current.state.is_success or current.proof_tx_hash):
            return
        await self._terminal(sid, SessionState.PROOF_TX_ERROR)

    async def close(self) -> None:
        self._closed = True
