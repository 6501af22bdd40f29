"""Session snapshots in Redis, one store per supplier (docs/redis-layout.md;
pocket-relay-miner `miner/session_store.go`).

Keys (``P`` = ``key_prefix``, default ``ha:miner:sessions``):

=================================  ====  ===============================================
``{P}:{supplier}:{session_id}``    HASH  the snapshot
(:func:`relayminer.sessions.model.encode_hash`)
``{P}:{supplier}:index``           SET   every session id of the supplier, any state
``{P}:{supplier}:state:{state}``   SET   ids last known in ``state`` (re-filtered on read)
=================================  ====  ===============================================

Every write is one Lua script (:mod:`relayminer.sessions.scripts`), so no write is ever half done,
and
every write refreshes the TTL of the keys it touches. Differences from the Go store, on purpose:

- ``save`` decides between "existing hash", "legacy JSON" and "new" inside its script, so it is
  atomic against a concurrent create or increment (Go reads first, outside its MULTI);
- ``update_settlement_metadata`` and ``update_wal_position`` never create a partial hash for a
  missing session: :class:`SessionNotFoundError` (API.md fix 5);
- compute units reach HINCRBY as an exact decimal string; values outside [0, 2^63-1] raise
  before any counter moves (API.md fix 6);
- ``delete`` removes the id from every state index, so no stale index entry survives it;
- the 48-byte root rule applies to legacy JSON too; a session id that would make the session
  key name another key of the supplier (``index``, anything with ``:``) is rejected
  (:func:`relayminer.sessions.model.require_session_id`);
- with a :class:`~relayminer.runtime.leases.Fence`, every write checks the lease token inside
  its own script and raises :class:`LeaseLostError` (nothing written) once the lease moved;
- relays are counted by the one accounting script (:mod:`relayminer.sessions.accounting`);
- the lifecycle writes the states of a whole claim or proof group in one round trip
  (:meth:`RedisSessionStore.write_states`), each session with its own outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from relayminer import metrics
from relayminer.errors import (
    ClosedError,
    LeaseLostError,
    RelayMinerError,
    SessionNotFoundError,
    SessionTerminalError,
    StoreError,
)
from relayminer.keys import KeyBuilder
from relayminer.runtime.leases import Fence
from relayminer.runtime.script_batch import ScriptCall, run_script_calls
from relayminer.sessions import scripts
from relayminer.sessions.accounting import (
    STATUS_MISSING,
    STATUS_TERMINAL,
    BatchAccounting,
    ComputeUnitsOverflowError,
    LegacySnapshot,
    SessionRelays,
)
from relayminer.sessions.model import (
    COUNTER_FIELDS,
    SessionSnapshot,
    SessionState,
    encode_hash,
    require_compute_units,
    require_id,
    require_session_id,
    stale_optional_fields,
)
from relayminer.sessions.snapshot_reads import RedisSessionReader, coerce_state
from relayminer.sessions.timefmt import format_rfc3339nano, utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionStoreConfig:
    supplier_address: str
    key_prefix: str = "ha:miner:sessions"
    session_ttl_seconds: int = 7200

    def __post_init__(self) -> None:
        require_id("supplier_address", self.supplier_address)
        require_id("key_prefix", self.key_prefix)
        ttl = self.session_ttl_seconds
        if isinstance(ttl, bool) or not isinstance(ttl, int):
            raise TypeError("SessionStoreConfig.session_ttl_seconds must be an int")
        if ttl <= 0:
            raise ValueError(f"SessionStoreConfig.session_ttl_seconds must be > 0, got {ttl}")


@runtime_checkable
class SessionStore(Protocol):
    """What the coordinator and the lifecycle need from a session store."""

    async def save(self, snapshot: SessionSnapshot) -> None: ...
    async def create_if_absent(self, snapshot: SessionSnapshot) -> bool: ...
    async def get(self, session_id: str) -> SessionSnapshot | None: ...
    async def get_by_supplier(self) -> list[SessionSnapshot]: ...
    async def get_by_state(self, state: SessionState) -> list[SessionSnapshot]: ...
    async def delete(self, session_id: str) -> None: ...
    async def update_state(self, session_id: str, new_state: SessionState) -> None: ...
    async def update_settlement_metadata(
        self, session_id: str, outcome: str, height: int
    ) -> None: ...
    async def update_wal_position(self, session_id: str, wal_entry_id: str) -> None: ...
    async def increment_relay_count(self, session_id: str, compute_units: int) -> None: ...
    async def close(self) -> None: ...


def _session_id(session_id: object) -> str:
    return require_session_id(session_id)


@dataclass(frozen=True, slots=True)
class StateWrite:
    """One session's new state, with fields written in the same step (name, value pairs)."""

    session_id: str
    state: SessionState
    fields: tuple[tuple[str, bytes | str], ...] = ()


def _flatten(fields: dict[str, bytes]) -> list[bytes | str]:
    out: list[bytes | str] = []
    for name, value in fields.items():
        out += [name, value]
    return out


class RedisSessionStore(RedisSessionReader):
    """The Redis implementation of :class:`SessionStore` for one supplier (the writes; the
    reads are :class:`~relayminer.sessions.snapshot_reads.RedisSessionReader`'s)."""

    def __init__(
        self, redis: Redis, config: SessionStoreConfig, *, fence: Fence | None = None
    ) -> None:
        super().__init__(redis, config)
        self.fence = fence
        self._ttl = config.session_ttl_seconds
        self._closed = False
        self._create = redis.register_script(scripts.CREATE_IF_ABSENT)
        self._save = redis.register_script(scripts.SAVE_SNAPSHOT)
        self._update_state = redis.register_script(scripts.UPDATE_STATE)
        self._update_existing = redis.register_script(scripts.UPDATE_EXISTING)
        self._delete = redis.register_script(scripts.DELETE_SESSION)
        self.accounting = BatchAccounting(
            redis, self.supplier, self.keys, session_ttl_seconds=self._ttl, fence=fence
        )

    def with_keys(self, keys: KeyBuilder) -> RedisSessionStore:
        """Use ``keys`` for every key that is not a session key (dedup sets, the lease key of
        the accounting step); session keys keep this store's configured prefix."""
        self.keys = keys.with_prefixes(sessions_prefix=self.config.key_prefix)
        self.accounting.keys = self.keys
        return self

    def _fence_args(self) -> tuple[str, str]:
        if self.fence is None:
            return self.keys.miner_claim_key(self.supplier), ""
        return self.fence.key, self.fence.token

    # --- writes -----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("session store is closed")

    @staticmethod
    def _stamp(snapshot: SessionSnapshot) -> None:
        # Like the Go store, writes stamp the caller's snapshot.
        now = utc_now()
        snapshot.last_updated_at = now
        if snapshot.created_at is None:
            snapshot.created_at = now

    async def save(self, snapshot: SessionSnapshot) -> None:
        """Upsert ``snapshot``. On an existing hash only metadata is written (the counters
        belong to the increment script) and absent optional fields are deleted."""
        self._check_open()
        await self._write(snapshot)

    def _prepare(self, snapshot: SessionSnapshot) -> tuple[str, dict[str, bytes], list[str]]:
        """Validate and stamp a snapshot to be written: its id, its full hash encoding and the
        keys every write touches (hash, supplier index, state index)."""
        if not isinstance(snapshot, SessionSnapshot):
            raise TypeError(f"snapshot must be a SessionSnapshot, got {type(snapshot).__name__}")
        snapshot.validate()
        sid = _session_id(snapshot.session_id)
        self._stamp(snapshot)
        keys = [self.session_key(sid), self.index_key(), self.state_index_key(snapshot.state)]
        return sid, encode_hash(snapshot, with_counters=True), keys

    async def _write(self, snapshot: SessionSnapshot) -> None:
        sid, full, keys = self._prepare(snapshot)
        meta = {k: v for k, v in full.items() if k not in COUNTER_FIELDS}
        counters = {k: full[k] for k in COUNTER_FIELDS}
        args: list[bytes | str | int] = [
            self._ttl,
            sid,
            snapshot.state.value,
            self._state_index_prefix(),
            2 * len(meta),
            *_flatten(meta),
            *_flatten(counters),
            *stale_optional_fields(snapshot),
        ]
        await self._write_script("save session snapshot", self._save, keys, args)
        metrics.SNAPSHOTS_SAVED.labels(supplier=self.supplier).inc()

    async def create_if_absent(self, snapshot: SessionSnapshot) -> bool:
        """Create the session unless its key exists (hash or legacy). True only for the one
        caller that created it; the hash and both index entries are written atomically."""
        self._check_open()
        sid, fields, keys = self._prepare(snapshot)
        created = await self._write_script(
            "create-if-absent session snapshot",
            self._create,
            keys,
            [self._ttl, sid, *_flatten(fields)],
        )
        if created == 1:
            metrics.SNAPSHOTS_SAVED.labels(supplier=self.supplier).inc()
            return True
        return False

    async def update_state(self, session_id: str, new_state: SessionState) -> None:
        sid = _session_id(session_id)
        state = coerce_state(new_state)
        now = format_rfc3339nano(utc_now())
        keys = [self.session_key(sid), self.state_index_key(state)]
        args = [state.value, now, self._ttl, self._state_index_prefix(), sid]
        code, _old = await self._write_script(
            "update session state", self._update_state, keys, args
        )
        if code == 1:
            raise SessionNotFoundError(sid)
        if code == 2:
            legacy = await self._read_legacy(sid)
            legacy.state = state
            await self._write(legacy)

    async def record_claim(self, session_id: str, root: bytes, claim_tx_hash: str) -> None:
        """State ``claimed`` with the claimed root and tx hash in one script, so reading the
        session and writing the claim are atomic (and fenced)."""
        sid = _session_id(session_id)
        state = SessionState.CLAIMED
        now = format_rfc3339nano(utc_now())
        keys = [self.session_key(sid), self.state_index_key(state)]
        fields: list[Any] = ["claimed_root_hash", root]
        if claim_tx_hash:
            fields += ["claim_tx_hash", claim_tx_hash]
        args = [state.value, now, self._ttl, self._state_index_prefix(), sid, *fields]
        for attempt in (1, 2):
            code, _old = await self._write_script("record claim", self._update_state, keys, args)
            if code == 0:
                metrics.SNAPSHOTS_SAVED.labels(supplier=self.supplier).inc()
                return
            if code == 1:
                raise SessionNotFoundError(sid)
            if attempt == 1:
                await self._migrate(sid)
        raise StoreError(f"failed to record claim: legacy key {sid} still present")

    async def write_states(self, writes: Sequence[StateWrite]) -> dict[str, RelayMinerError | None]:
        """Write the states (and fields) of many sessions in one round trip: what a claim or
        proof group of the lifecycle writes (:mod:`relayminer.runtime.script_batch`). Each
        write is the same fenced script as :meth:`update_state`.

        Returns, per session id, None when written, else its own error
        (:class:`SessionNotFoundError`, :class:`StoreError`). A legacy JSON snapshot is
        migrated and then written alone. Raises :class:`LeaseLostError` when the lease moved
        (nothing of this replica's is written any more) and :class:`StoreError` when Redis could
        not be reached (no outcome is known).
        """
        self._check_open()
        fence_key, token = self._fence_args()
        now = format_rfc3339nano(utc_now())
        prefix = self._state_index_prefix()
        calls: list[ScriptCall] = []
        for w in writes:
            sid, state = _session_id(w.session_id), coerce_state(w.state)
            keys = [fence_key, self.session_key(sid), self.state_index_key(state)]
            fields = [part for pair in w.fields for part in pair]
            calls.append(
                ScriptCall(
                    self._update_state,
                    keys,
                    [token, state.value, now, self._ttl, prefix, sid, *fields],
                )
            )
        try:
            replies = await run_script_calls(self._redis, calls, one_by_one=self.keys.hash_tagged)
        except (RedisError, OSError) as err:
            raise StoreError(f"failed to write session states: {err}") from err
        out: dict[str, RelayMinerError | None] = {}
        for w, call, reply in zip(writes, calls, replies, strict=True):
            out[w.session_id] = await self._state_written(w.session_id, call, reply)
        return out

    def _refused(self, reply: Exception, what: str) -> StoreError:
        """The error of one refused script call of a batch: :class:`LeaseLostError` is raised
        when the fence refused it (nothing of this replica's is written any more)."""
        if "FENCED" in str(reply):
            raise LeaseLostError(f"lease of {self.supplier} lost: {what}")
        return StoreError(f"{what}: {reply}")

    async def _state_written(
        self, sid: str, call: ScriptCall, reply: Any
    ) -> RelayMinerError | None:
        """The outcome of one :meth:`write_states` call (a legacy snapshot: migrate, retry)."""
        if isinstance(reply, Exception):
            return self._refused(reply, f"failed to write the state of {sid}")
        code = int(reply[0])
        if code == 2:  # a legacy JSON snapshot: rewrite it as a hash, then write alone
            try:
                await self._migrate(sid)
                code, _old = await self._write_script(
                    "write session state", call.script, list(call.keys[1:]), call.args[1:]
                )
            except LeaseLostError:
                raise
            except RelayMinerError as err:
                return err
        if code == 0:
            metrics.SNAPSHOTS_SAVED.labels(supplier=self.supplier).inc()
            return None
        if code == 1:
            return SessionNotFoundError(sid)
        return StoreError(f"failed to write the state of {sid}: legacy key still present")

    async def update_settlement_metadata(self, session_id: str, outcome: str, height: int) -> None:
        sid = _session_id(session_id)
        if not isinstance(outcome, str):
            raise TypeError(f"outcome must be a str, got {type(outcome).__name__}")
        if isinstance(height, bool) or not isinstance(height, int):
            raise TypeError(f"height must be an int, got {type(height).__name__}")
        fields = {
            "settlement_outcome": outcome.encode(),
            "settlement_height": str(height).encode(),
        }
        await self._update_fields(sid, fields, "update settlement metadata")

    async def update_settlements(
        self, outcomes: Sequence[tuple[str, str, int]]
    ) -> dict[str, RelayMinerError | None]:
        """:meth:`update_settlement_metadata` of many ``(session id, outcome, height)`` in one
        round trip (what one block's settlement events bring a supplier). Per session None
        when written, else its own error (:class:`SessionNotFoundError`, :class:`StoreError`);
        a legacy JSON snapshot is migrated and written alone. Raises :class:`LeaseLostError`
        when the lease moved and :class:`StoreError` when Redis could not be reached."""
        self._check_open()
        fence_key, token = self._fence_args()
        now = format_rfc3339nano(utc_now()).encode()
        calls: list[ScriptCall] = []
        for session_id, outcome, height in outcomes:
            fields = {
                "settlement_outcome": outcome.encode(),
                "settlement_height": str(height).encode(),
                "last_updated_at": now,
            }
            calls.append(
                ScriptCall(
                    self._update_existing,
                    [fence_key, self.session_key(_session_id(session_id))],
                    [token, self._ttl, *_flatten(fields)],
                )
            )
        try:
            replies = await run_script_calls(self._redis, calls, one_by_one=self.keys.hash_tagged)
        except (RedisError, OSError) as err:
            raise StoreError(f"failed to update settlement metadata: {err}") from err
        out: dict[str, RelayMinerError | None] = {}
        for (sid, outcome, height), reply in zip(outcomes, replies, strict=True):
            if isinstance(reply, Exception):
                out[sid] = self._refused(reply, f"failed to update settlement metadata of {sid}")
            elif int(reply) == 0:
                out[sid] = None
            elif int(reply) == 1:
                out[sid] = SessionNotFoundError(sid)
            else:  # a legacy JSON snapshot: migrated and written alone
                try:
                    await self.update_settlement_metadata(sid, outcome, height)
                    out[sid] = None
                except LeaseLostError:
                    raise
                except RelayMinerError as err:
                    out[sid] = err
        return out

    async def update_wal_position(self, session_id: str, wal_entry_id: str) -> None:
        sid = _session_id(session_id)
        if not isinstance(wal_entry_id, str):
            raise TypeError(f"wal_entry_id must be a str, got {type(wal_entry_id).__name__}")
        await self._update_fields(
            sid, {"last_wal_entry_id": wal_entry_id.encode()}, "update WAL position"
        )

    async def record_proof_tx(self, session_id: str, proof_tx_hash: str) -> None:
        """Record the proof's tx hash on an existing session (one fenced script)."""
        sid = _session_id(session_id)
        if not proof_tx_hash:  # an empty hash deletes the field: the snapshot path does that
            snapshot = await self._read_legacy(sid)
            snapshot.proof_tx_hash = ""
            await self.save(snapshot)
            return
        await self._update_fields(sid, {"proof_tx_hash": proof_tx_hash.encode()}, "record proof")

    async def _update_fields(self, sid: str, fields: dict[str, bytes], what: str) -> None:
        fields = {**fields, "last_updated_at": format_rfc3339nano(utc_now()).encode()}
        args = [self._ttl, *_flatten(fields)]
        for attempt in (1, 2):
            code = await self._write_script(
                what, self._update_existing, [self.session_key(sid)], args
            )
            if code == 0:
                return
            if code == 1:
                raise SessionNotFoundError(sid)
            if attempt == 1:
                await self._migrate(sid)
        raise StoreError(f"failed to {what}: legacy key {sid} still present after migration")

    async def increment_relay_count(self, session_id: str, compute_units: int) -> None:
        """Count one relay of ``compute_units``: the accounting script on a batch of one (no
        dedup, no creation). Refused for terminal sessions."""
        sid = _session_id(session_id)
        cu = require_compute_units(compute_units)
        outcome = await self.account_one(SessionRelays(sid, [cu], dedup=False))
        if outcome == STATUS_MISSING:
            raise SessionNotFoundError(sid)
        if outcome == STATUS_TERMINAL:
            raise SessionTerminalError(sid)

    async def account_one(self, relays: SessionRelays) -> int:
        """Run the accounting step for one session (migrating a legacy snapshot first) and
        return its status."""
        for attempt in (1, 2):
            try:
                (outcome,) = await self.accounting.run([relays])
            except LegacySnapshot:
                if attempt == 2:
                    break
                await self._migrate(relays.session_id)
                continue
            except (RedisError, OSError, ComputeUnitsOverflowError) as err:
                raise StoreError(f"failed to increment relay count: {err}") from err
            if outcome.created:
                metrics.SNAPSHOTS_SAVED.labels(supplier=self.supplier).inc()
            return outcome.status
        raise StoreError(f"failed to count relays: legacy key {relays.session_id} still present")

    async def migrate_legacy(self, session_id: str) -> None:
        """Rewrite a legacy JSON snapshot as a hash (counters kept from the JSON); a no-op when
        the key is already a hash or gone."""
        await self._migrate(_session_id(session_id))

    async def _migrate(self, sid: str) -> None:
        """Rewrite a legacy JSON snapshot as a hash (counters kept from the JSON)."""
        try:
            legacy = await self._read_legacy(sid)
        except SessionNotFoundError:
            return  # gone meanwhile: the retry reports it
        await self._write(legacy)

    async def _read_legacy(self, sid: str) -> SessionSnapshot:
        snapshot = await self.get(sid)
        if snapshot is None:
            raise SessionNotFoundError(sid)
        return snapshot

    async def delete(self, session_id: str) -> None:
        """Delete the snapshot and remove its id from the supplier index and every state index."""
        sid = _session_id(session_id)
        states = [self.state_index_key(state) for state in SessionState]
        await self._write_script(
            "delete session snapshot",
            self._delete,
            [self.session_key(sid), self.index_key()],
            [sid, *states],
        )

    async def close(self) -> None:
        self._closed = True

    # --- plumbing ---------------------------------------------------------------------------
    async def _write_script(
        self, what: str, script: Callable[..., Any], keys: list[str], args: Sequence[Any]
    ) -> Any:
        """A write script: the lease key and token go first (scripts.py convention)."""
        fence_key, token = self._fence_args()
        return await self._run(what, script, [fence_key, *keys], [token, *args])
