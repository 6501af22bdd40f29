"""SessionCoordinator: every session transition of one supplier goes through here.

It wraps a :class:`~relayminer.sessions.store.SessionStore` (spec/miner_core.md §4):

- creation happens exactly once under any concurrency (the store's create-if-absent script),
  and only the creator fires the *created* callback;
- relays are counted by the store's atomic increment; a late relay for a terminal session is
  skipped (not an error);
- terminal transitions fire the *terminal* callback; three markers are guarded so they never
  overwrite a better outcome (a claim or proof another replica already made).

Callbacks may be plain functions or coroutine functions. A failing callback is logged, never
propagated: the transition it reports has already happened in Redis.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from relayminer import metrics
from relayminer.errors import (
    ClosedError,
    RelayMinerError,
    SessionNotFoundError,
    SessionTerminalError,
)
from relayminer.sessions.model import (
    SessionSnapshot,
    SessionState,
    require_compute_units,
    require_id,
)
from relayminer.sessions.store import SessionStore

log = logging.getLogger(__name__)

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
        """Count one relay, creating the session first if this is its first relay.

        Missing metadata (empty supplier or service) cannot create a session: the increment
        then fails with :class:`SessionNotFoundError`. A terminal session skips the relay.
        """
        self._check_open()
        sid = require_id("session_id", session_id)
        require_compute_units(compute_units)
        _check_metadata(
            supplier_address,
            service_id,
            application_address,
            session_start_height,
            session_end_height,
        )
        try:
            existing = await self.store.get(sid)
        except RelayMinerError as err:  # only an optimisation: creation below is atomic
            log.warning("session lookup failed", extra={"session_id": sid, "error": str(err)})
            existing = None
        if existing is None:
            if not supplier_address or not service_id:
                log.warning(
                    "session not found and missing metadata to create it",
                    extra={"session_id": sid},
                )
            else:
                try:
                    await self.on_session_created(
                        sid,
                        supplier_address,
                        service_id,
                        application_address,
                        session_start_height,
                        session_end_height,
                    )
                except RelayMinerError as err:
                    log.warning(
                        "session creation failed", extra={"session_id": sid, "error": str(err)}
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
        snapshot = await self._require(session_id)
        snapshot.proof_tx_hash = proof_tx_hash
        await self.store.save(snapshot)

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
