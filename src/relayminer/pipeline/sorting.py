"""Sorting a batch of stream entries before anything is written: what is mined, what is late,
what goes to the dead-letter stream and why.

Dead-lettered at once: malformed entries (see :func:`relayminer.pipeline.relays.parse_entry`:
bad protobuf, poison session ids, a relay hash that is not sha256 of the bytes ...), relays of
another supplier, and relays whose compute units would take their session's
``total_compute_units`` past 2^63-1. Dead-lettered after ``max_retries``: an entry whose
deliveries plus recorded processing failures exceed it. Failures are recorded per entry in
``ha:relays:{supplier}:failures`` only when the entry's own session work failed (not for
infrastructure errors, which are retried in place), so the miner's restarts and Redis outages
never push a good relay to the dead-letter stream (``docs/failure-behaviour.md``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from relayminer.errors import RelayMinerError
from relayminer.keys import KeyBuilder
from relayminer.pipeline.consumer import StreamEntry
from relayminer.pipeline.relays import Rejection, Relay, parse_entry
from relayminer.sessions import scripts
from relayminer.sessions.accounting import DeadLetter, SessionRelays
from relayminer.sessions.model import MAX_INT64, SessionSnapshot, SessionState
from relayminer.sessions.store import RedisSessionStore
from relayminer.smst.layout import DEFAULT_LAYOUT, SMSTLayout

OVERFLOW_REASON = "total_compute_units would exceed 2^63-1"


@dataclass
class SortedBatch:
    relays: dict[str, list[Relay]] = field(default_factory=lambda: defaultdict(list))
    dead: list[DeadLetter] = field(default_factory=list)
    late: int = 0
    entries: dict[bytes, StreamEntry] = field(default_factory=dict)


def dead_letter(entry: StreamEntry, reason: str, data: bytes | None = None) -> DeadLetter:
    if data is None and entry.fields:
        data = entry.fields.get(b"data")
    return DeadLetter(entry.entry_id, reason, data, entry.deliveries)


def session_relays(
    sid: str, relays: list[Relay], *, journal: bool = False, known: bool = False
) -> SessionRelays:
    """A session's relays for the accounting step, created from its first relay if new; with
    ``journal`` the leaf journal is their gate (the relay bytes go with them), else the dedup
    set. ``known``: the session is believed to exist, its snapshot is not sent."""
    if known:
        return SessionRelays(
            sid,
            [r.compute_units for r in relays],
            [r.relay_hash for r in relays],
            relay_bytes=[r.relay_bytes for r in relays] if journal else None,
            known=True,
        )
    first = relays[0]
    snapshot = SessionSnapshot(
        session_id=sid,
        supplier_operator_address=first.supplier_operator_address,
        service_id=first.service_id,
        application_address=first.application_address,
        session_start_height=first.session_start_height,
        session_end_height=first.session_end_height,
        state=SessionState.ACTIVE,
    )
    return SessionRelays(
        sid,
        [r.compute_units for r in relays],
        [r.relay_hash for r in relays],
        dedup=True,
        create=snapshot,
        relay_bytes=[r.relay_bytes for r in relays] if journal else None,
    )


class BatchSorter:
    """Sorts one supplier's batches (reads only; the failure bookkeeping is the one write)."""

    def __init__(
        self,
        redis: Redis,
        supplier: str,
        keys: KeyBuilder,
        store: RedisSessionStore,
        *,
        max_retries: int,
        failure_ttl_seconds: int,
        layout: SMSTLayout = DEFAULT_LAYOUT,
    ) -> None:
        self._redis = redis
        self.supplier = supplier
        self.keys = keys
        self.store = store
        self.max_retries = max_retries
        self.failures_key = keys.stream_failures_key(supplier)
        self._failure_ttl = failure_ttl_seconds
        self.layout = layout
        self._record = redis.register_script(scripts.RECORD_FAILURES)

    async def sort(self, entries: Sequence[StreamEntry]) -> SortedBatch:
        out = SortedBatch(entries={e.entry_id: e for e in entries})
        failures = await self._failures([e for e in entries if e.reclaimed])
        for entry in entries:
            failed, cause = failures.get(entry.entry_id, (0, ""))
            if entry.deliveries + failed > self.max_retries:
                if failed:
                    reason = (
                        f"processing failed {failed} times (max_retries={self.max_retries}): "
                        f"{cause}"
                    )
                else:
                    reason = f"delivered {entry.deliveries} times (max_retries={self.max_retries})"
                out.dead.append(dead_letter(entry, reason))
                continue
            parsed = parse_entry(entry.entry_id, entry.fields)
            if isinstance(parsed, Relay) and parsed.supplier_operator_address != self.supplier:
                parsed = Rejection(
                    entry.entry_id,
                    f"relay for supplier {parsed.supplier_operator_address!r} in the stream of "
                    f"{self.supplier!r}",
                    (entry.fields or {}).get(b"data"),
                )
            if isinstance(parsed, Rejection):
                out.dead.append(dead_letter(entry, parsed.reason, parsed.data))
            else:
                out.relays[parsed.session_id].append(parsed)
        return out

    async def _failures(self, entries: Sequence[StreamEntry]) -> dict[bytes, tuple[int, str]]:
        if not entries:
            return {}
        ids = [e.entry_id for e in entries]
        values: list[bytes | None] = await self._redis.hmget(  # type: ignore[assignment]
            self.failures_key, ids
        )
        out: dict[bytes, tuple[int, str]] = {}
        for entry_id, value in zip(ids, values, strict=True):
            if value:
                count, _, cause = value.decode(errors="replace").partition("\t")
                out[entry_id] = (int(count) if count.isdigit() else 1, cause)
        return out

    async def record_failures(self, entry_ids: Sequence[bytes], cause: str) -> None:
        """Count one failure against each entry (its session's work failed)."""
        if entry_ids:
            await self._record(
                keys=[self.failures_key], args=[self._failure_ttl, cause[:300], *entry_ids]
            )

    async def trim_overflow(self, batch: SortedBatch, sid: str) -> None:
        """The accounting step refused ``sid`` for overflow: dead-letter the relays that do
        not fit, keep the others (stream order)."""
        total = await self._redis.hget(self.store.session_key(sid), "total_compute_units")
        current = int(total) if isinstance(total, bytes) and total.isdigit() else 0
        before = len(batch.relays[sid])
        await self._drop_overflow(batch, sid, current)
        if sid in batch.relays and len(batch.relays[sid]) == before:  # nothing fitted less
            for relay in batch.relays.pop(sid):
                batch.dead.append(dead_letter(batch.entries[relay.entry_id], OVERFLOW_REASON))

    async def precheck(self, batch: SortedBatch) -> None:
        """Drop late sessions (terminal, or tree sealed for the claim) and dead-letter relays
        that would overflow their session's compute units, before any tree is touched."""
        session_ids = list(batch.relays)
        if not session_ids:
            return
        replies: list[object] = []
        for _attempt in range(3):
            async with self._redis.pipeline(transaction=False) as pipe:
                for sid in session_ids:
                    key = self.store.session_key(sid)
                    pipe.type(key)
                    pipe.hget(key, "state")
                    pipe.exists(self.keys.smst_root_key(self.supplier, sid))
                    pipe.hget(key, "total_compute_units")
                replies = await pipe.execute(raise_on_error=False)
            legacy = [sid for i, sid in enumerate(session_ids) if replies[4 * i] == b"string"]
            if not legacy:
                break
            for sid in legacy:  # older miners' JSON snapshots: migrate, then look again
                await self.store.migrate_legacy(sid)
        else:
            raise RelayMinerError("legacy session keys kept reappearing")
        for i, sid in enumerate(session_ids):
            state, sealed, total = replies[4 * i + 1], replies[4 * i + 2], replies[4 * i + 3]
            terminal = False
            if isinstance(state, bytes):
                try:
                    terminal = SessionState(state.decode()).is_terminal
                except ValueError:
                    terminal = False
            if terminal or sealed:
                batch.late += len(batch.relays.pop(sid))
                continue
            current = int(total) if isinstance(total, bytes) and total.isdigit() else 0
            if current + sum(r.compute_units for r in batch.relays[sid]) > MAX_INT64:
                await self._drop_overflow(batch, sid, current)

    async def _drop_overflow(self, batch: SortedBatch, sid: str, current: int) -> None:
        """Keep the relays (in stream order) that fit under 2^63-1; dead-letter the others."""
        relays = batch.relays[sid]
        known = await self._known(sid, [r.relay_hash for r in relays])
        kept: list[Relay] = []
        seen: set[bytes] = set()
        for relay, is_known in zip(relays, known, strict=True):
            if is_known or relay.relay_hash in seen:
                kept.append(relay)  # a duplicate adds nothing
                continue
            if current + relay.compute_units > MAX_INT64:
                batch.dead.append(dead_letter(batch.entries[relay.entry_id], OVERFLOW_REASON))
                continue
            current += relay.compute_units
            seen.add(relay.relay_hash)
            kept.append(relay)
        if kept:
            batch.relays[sid] = kept
        else:
            del batch.relays[sid]

    async def _known(self, sid: str, hashes: list[bytes]) -> list[bool]:
        """Which relay hashes the session's gate (dedup set or leaf journal) already holds."""
        if self.layout is SMSTLayout.GO:
            dedup = self.keys.miner_dedup_session_key(sid, self.supplier)
            return [bool(k) for k in await self._redis.smismember(dedup, hashes)]
        leaves = self.keys.smst_leaves_key(self.supplier, sid)
        async with self._redis.pipeline(transaction=False) as pipe:
            for h in hashes:
                pipe.hexists(leaves, h)
            return [bool(k) for k in await pipe.execute()]
