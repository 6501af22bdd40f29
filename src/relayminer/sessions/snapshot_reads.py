"""The read side of the session snapshots in Redis: keys, one snapshot, and the supplier's
sessions by index (the key layout is described in :mod:`relayminer.sessions.store`).

It is apart from the writes because reading needs none of their fencing, stamping or
migration: every snapshot is read by the one read script (:data:`scripts.READ_SNAPSHOT`), which
returns the key's type with its value, so a hash and a legacy JSON string are told apart
atomically, and many are read in one pipelined round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from relayminer import metrics
from relayminer.errors import LeaseLostError, SessionDecodeError, StoreError
from relayminer.keys import KeyBuilder
from relayminer.runtime.script_batch import ScriptCall, run_script_calls
from relayminer.sessions import scripts
from relayminer.sessions.model import (
    SessionSnapshot,
    SessionState,
    decode_hash,
    decode_legacy_json,
    require_session_id,
)

if TYPE_CHECKING:
    from relayminer.sessions.store import SessionStoreConfig

__all__ = ["RedisSessionReader", "coerce_state"]

# The store's logger: these log lines are the store's, as they were before the split.
log = logging.getLogger("relayminer.sessions.store")


def coerce_state(state: object) -> SessionState:
    """``state`` as a :class:`SessionState`; a clear error for anything else."""
    if isinstance(state, SessionState):
        return state
    if not isinstance(state, str):
        raise TypeError(f"state must be a SessionState, got {type(state).__name__}")
    try:
        return SessionState(state)
    except ValueError:
        raise ValueError(f"state: unknown session state {state!r}") from None


class RedisSessionReader:
    """Reads the session snapshots of one supplier."""

    def __init__(self, redis: Redis, config: SessionStoreConfig) -> None:
        self._redis = redis
        self.config = config
        self.supplier = config.supplier_address
        self.keys = KeyBuilder.for_client(redis).with_prefixes(sessions_prefix=config.key_prefix)
        self._read = redis.register_script(scripts.READ_SNAPSHOT)

    # --- keys -------------------------------------------------------------------------------
    def session_key(self, session_id: str) -> str:
        return self.keys.miner_session_key(self.supplier, session_id)

    def index_key(self) -> str:
        return self.keys.miner_sessions_index_key(self.supplier)

    def state_index_key(self, state: SessionState | str) -> str:
        value = state.value if isinstance(state, SessionState) else state
        return self.keys.miner_session_state_index_key(self.supplier, value)

    def _state_index_prefix(self) -> str:
        return self.keys.miner_session_state_index_prefix(self.supplier)

    # --- reads ------------------------------------------------------------------------------
    async def get(self, session_id: str) -> SessionSnapshot | None:
        """The snapshot, from the hash layout or a legacy JSON string; None when absent.
        A stored field that does not parse raises :class:`SessionDecodeError` naming it."""
        sid = require_session_id(session_id)
        reply = await self._run("get session snapshot", self._read, [self.session_key(sid)], [])
        return self._decode(sid, reply)

    async def get_many(self, session_ids: Sequence[str]) -> dict[str, SessionSnapshot]:
        """The snapshots of ``session_ids`` that exist (and decode), by id, in one round trip."""
        ids = [require_session_id(sid) for sid in session_ids]
        return {snap.session_id: snap for snap in await self._get_many(ids)}

    def _decode(self, sid: str, reply: Sequence[Any]) -> SessionSnapshot | None:
        key = self.session_key(sid)
        kind = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        if kind == "none":
            return None
        if kind == "hash":
            flat = reply[1]
            if not flat:
                return None
            return decode_hash(key, dict(zip(flat[::2], flat[1::2], strict=True)))
        if kind == "string":
            return decode_legacy_json(key, reply[1])
        raise SessionDecodeError(key, "<key>", f"unexpected redis type for session key: {kind}")

    async def _get_many(self, ids: Sequence[str]) -> list[SessionSnapshot]:
        if not ids:
            return []
        calls = [ScriptCall(self._read, [self.session_key(sid)], []) for sid in ids]
        try:
            replies = await run_script_calls(self._redis, calls, one_by_one=self.keys.hash_tagged)
        except (RedisError, OSError) as err:
            raise StoreError(f"failed to read session snapshots: {err}") from err
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise StoreError(f"failed to read session snapshots: {reply}") from reply
        out: list[SessionSnapshot] = []
        for sid, reply in zip(ids, replies, strict=True):
            try:
                snapshot = self._decode(sid, reply)
            except SessionDecodeError as err:
                metrics.SESSION_DECODE_ERRORS.labels(supplier=self.supplier).inc()
                log.warning("skipping undecodable session snapshot", extra={"error": str(err)})
                continue
            if snapshot is not None:
                out.append(snapshot)
        return out

    async def _members(self, key: str) -> list[str]:
        try:
            raw: set[bytes] = await self._redis.smembers(key)  # type: ignore[assignment]
        except (RedisError, OSError) as err:
            raise StoreError(f"failed to get session IDs from {key}: {err}") from err
        ids = sorted(m.decode() for m in raw)
        return [sid for sid in ids if sid and sid != "index"]

    async def get_by_supplier(self) -> list[SessionSnapshot]:
        """Every session of the supplier, whatever its state (sorted by session id)."""
        return await self._get_many(await self._members(self.index_key()))

    async def get_by_state(self, state: SessionState) -> list[SessionSnapshot]:
        """Sessions whose *stored* state is ``state`` (the index may be stale: re-filtered)."""
        wanted = coerce_state(state)
        snapshots = await self._get_many(await self._members(self.state_index_key(wanted)))
        return [s for s in snapshots if s.state is wanted]

    async def get_by_states(
        self, states: Sequence[SessionState], ids: Sequence[str] | None = None
    ) -> list[SessionSnapshot]:
        """Sessions whose stored state is one of ``states``, in two round trips whatever their
        number (the lifecycle reads its live sessions this way). ``ids``: the
        :meth:`ids_by_states` of ``states`` already read (one round trip then)."""
        wanted = [coerce_state(st) for st in states]
        if ids is None:
            ids = await self.ids_by_states(wanted)
        snapshots = await self._get_many(ids)
        return [snap for snap in snapshots if snap.state in wanted]

    async def ids_by_states(self, states: Sequence[SessionState]) -> list[str]:
        """The sorted ids in the state indexes of ``states``: one round trip, no snapshot read
        (the indexes may be stale; :meth:`get_by_states` re-filters on the stored state)."""
        keys = [self.state_index_key(coerce_state(st)) for st in states]
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.smembers(key)
                replies = await pipe.execute()
        except (RedisError, OSError) as err:
            raise StoreError(f"failed to get session IDs of {self.supplier}: {err}") from err
        return sorted({m.decode() for members in replies for m in members} - {"", "index"})

    # --- plumbing ---------------------------------------------------------------------------
    async def _run(
        self, what: str, script: Callable[..., Any], keys: list[str], args: Sequence[Any]
    ) -> Any:
        try:
            return await script(keys=keys, args=list(args))
        except (RedisError, OSError) as err:
            if "FENCED" in str(err):
                raise LeaseLostError(f"lease of {self.supplier} lost: failed to {what}") from err
            raise StoreError(f"failed to {what}: {err}") from err
