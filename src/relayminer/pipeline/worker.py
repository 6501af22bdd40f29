"""RelayWorker: turns one supplier's relay stream into SMST leaves and session counters, once.

Per batch of stream entries, in this order:

1. entries delivered more than ``max_retries`` times, and malformed ones (no ``data``, bad
   protobuf, empty session id or relay bytes, non-positive end height, wrong supplier ...) are
   set aside for the dead-letter stream, each with its reason;
2. the terminal pre-check: relays of sessions that are terminal, or whose tree is sealed for
   the claim, are late: acked, not counted;
3. hash repair (sha256 of the bytes when the publisher sent no hash), then every relay goes
   into its session's SMST and each session's tree is committed once (one atomic compare-and-
   set script per session: a crash at any instant leaves ``live_root`` naming a complete tree);
4. one atomic accounting script: each relay hash is added to its session's dedup set and
   counted only if it was new; sessions are created on first sight; dead letters are written;
   every entry of the batch is acked and deleted.

Why this is exactly once: the SMST insert is idempotent (same key, value and weight), and the
dedup set decides counting in the same atomic step as the ack. A crash before step 4 leaves the
entries pending, to be reclaimed and replayed; the replay changes neither the tree nor (for
hashes already counted) the counters. Two replicas racing on the same entries both insert the
same leaves and only one of them counts each hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relayminer import metrics
from relayminer.errors import LeaseLostError, RelayMinerError
from relayminer.keys import KeyBuilder, Namespace
from relayminer.pipeline.consumer import StreamConsumer, StreamEntry
from relayminer.pipeline.relays import Rejection, Relay, parse_entry
from relayminer.runtime.aio import wait_or_stop
from relayminer.runtime.leases import Fence
from relayminer.sessions import scripts
from relayminer.sessions.model import SessionSnapshot, SessionState, encode_hash, require_id
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig
from relayminer.sessions.timefmt import format_rfc3339nano, utc_now
from relayminer.smst.redis_store import RedisSMSTStore

log = logging.getLogger(__name__)

MAX_BATCH_SIZE = 5000
LATENCY_SAMPLE = 16  # keeps every Lua unpack() under Redis's 8000-value C-stack limit


@dataclass
class WorkerConfig:
    batch_size: int = 500
    block_ms: int = 1000
    claim_idle_ms: int = 30000
    max_retries: int = 3
    consumer_name: str | None = None
    namespace: Namespace | None = None
    #: TTL of session snapshots and SMST keys (sliding).
    session_ttl_seconds: int = 7200
    #: TTL of the dedup sets (sliding). It must outlast the session's claim window: the set is
    #: the exactly-once gate. Default: the session TTL.
    dedup_ttl_seconds: int | None = None
    #: Entries older than this are trimmed from the stream (their sessions have expired).
    trim_max_age_ms: int | None = None
    trim_interval_s: float = 600.0
    #: how often the stream lag and pending gauges are refreshed
    gauges_interval_s: float = 5.0
    fence: Fence | None = None

    def __post_init__(self) -> None:
        for name in (
            "batch_size",
            "block_ms",
            "claim_idle_ms",
            "max_retries",
            "session_ttl_seconds",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"WorkerConfig.{name} must be an int")
            low = 0 if name in ("claim_idle_ms", "max_retries") else 1
            if value < low:
                raise ValueError(f"WorkerConfig.{name} must be >= {low}, got {value}")
        if self.batch_size > MAX_BATCH_SIZE:
            raise ValueError(f"WorkerConfig.batch_size must be <= {MAX_BATCH_SIZE}")
        if self.dedup_ttl_seconds is not None and self.dedup_ttl_seconds < 1:
            raise ValueError("WorkerConfig.dedup_ttl_seconds must be >= 1")

    @property
    def effective_dedup_ttl(self) -> int:
        return self.dedup_ttl_seconds or self.session_ttl_seconds

    @property
    def effective_trim_max_age_ms(self) -> int:
        return self.trim_max_age_ms or self.session_ttl_seconds * 1000


def default_consumer_name() -> str:
    return f"miner-{socket.gethostname()}-{os.getpid()}"


@dataclass
class BatchResult:
    handled: int = 0  # entries acked (counted, duplicate, late or dead-lettered)
    counted: int = 0  # relays counted for the first time
    duplicates: int = 0
    late: int = 0  # relays of terminal or sealed sessions
    dead: int = 0
    created: list[str] = field(default_factory=list)
    #: ``published_at_unix_nano`` of the relays of this batch (0 when the publisher set none);
    #: with the time the batch was acked this gives publish-to-ack latencies
    published_ns: list[int] = field(default_factory=list)


@dataclass
class _Staged:
    """A batch whose trees are committed and whose accounting step is due."""

    entries: Sequence[StreamEntry]
    relays: dict[str, list[Relay]]
    dead: list[tuple[StreamEntry, Rejection]]
    ack_mode: str
    result: BatchResult
    started: float


SessionCreatedHook = Callable[[SessionSnapshot], Awaitable[None] | None]
BatchHook = Callable[["BatchResult"], Awaitable[None] | None]
#: Called at each step of a batch ("read", "smst", "accounted") with the batch size; the
#: crash tests use it to kill the process between steps.
TraceHook = Callable[[str, int], None]


class RelayWorker:
    """Consumes ``ha:relays:{supplier}`` and accounts every relay exactly once."""

    def __init__(
        self,
        redis: Redis,
        supplier_address: str,
        config: WorkerConfig | None = None,
        *,
        on_session_created: SessionCreatedHook | None = None,
        on_batch: BatchHook | None = None,
        trace: TraceHook | None = None,
    ) -> None:
        self.supplier = require_id("supplier_address", supplier_address)
        self.config = config if config is not None else WorkerConfig()
        self.keys = KeyBuilder(self.config.namespace)
        self.consumer_name = self.config.consumer_name or default_consumer_name()
        self._redis = redis
        self.consumer = StreamConsumer(
            redis,
            self.supplier,
            self.consumer_name,
            keys=self.keys,
            batch_size=self.config.batch_size,
        )
        self.store = RedisSessionStore(
            redis,
            SessionStoreConfig(
                self.supplier, self.keys.miner_sessions_prefix(), self.config.session_ttl_seconds
            ),
        )
        self.trees = RedisSMSTStore(
            redis,
            self.supplier,
            keys=self.keys,
            ttl_seconds=self.config.session_ttl_seconds,
            fence=self.config.fence,
        )
        self._account = redis.register_script(scripts.ACCOUNT_BATCH)
        self._on_created = on_session_created
        self._on_batch = on_batch
        self._trace = trace
        self._ack_mode: str | None = None
        self._last_reclaim = 0.0
        self._last_trim = 0.0
        self._last_gauges = 0.0
        self.total = BatchResult()

    # --- loop ---------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set; the batch in hand is finished first. Connection
        failures are retried with capped exponential backoff (1 s, 2 s ... 30 s)."""
        stop = stop or asyncio.Event()
        backoff = 1.0
        started = False
        while not stop.is_set():
            try:
                if not started:
                    await self._start()
                    started = True
                    backoff = 1.0
                await self._step(stop)
            except (RedisConnectionError, RedisTimeoutError, OSError) as err:
                metrics.RECONNECTS.labels(component="relay_worker").inc()
                log.warning(
                    "redis unavailable, retrying",
                    extra={"supplier": self.supplier, "backoff_s": backoff, "error": repr(err)},
                )
                started = False
                self.trees.forget_all()
                await wait_or_stop(stop, backoff)
                backoff = min(backoff * 2, 30.0)

    async def _start(self) -> None:
        await self.consumer.ensure_group()
        await self._ack_mode_probe()
        # Our own pending entries first (a restart under the same name), then any consumer's
        # entries idle for longer than the claim timeout.
        await self._drain_own_pending()
        await self._reclaim(self.config.claim_idle_ms)
        self._last_reclaim = time.monotonic()

    def _reclaim_due(self) -> bool:
        return (time.monotonic() - self._last_reclaim) * 1000 >= self.config.claim_idle_ms

    async def _maintenance(self) -> None:
        """Reclaim idle pending entries and trim expired ones when they are due."""
        now = time.monotonic()
        if self._reclaim_due():
            self._last_reclaim = now
            await self._reclaim(self.config.claim_idle_ms)
        if now - self._last_gauges >= self.config.gauges_interval_s:
            self._last_gauges = now
            await self.consumer.lag()  # sets ha_transport_redis_stream_lag
            await self.consumer.pending_count()  # sets ha_transport_redis_pending_messages
        if now - self._last_trim >= self.config.trim_interval_s:
            self._last_trim = now
            trimmed = await self.consumer.trim(self.config.effective_trim_max_age_ms)
            if trimmed:
                log.info(
                    "trimmed expired stream entries",
                    extra={"supplier": self.supplier, "count": trimmed},
                )

    async def _step(self, stop: asyncio.Event) -> None:
        await self._maintenance()
        started = time.monotonic()
        entries = await self.consumer.read_new(self.config.block_ms)
        if not entries:
            if (time.monotonic() - started) * 1000 < self.config.block_ms / 2:
                # The server returned at once instead of blocking (fakeredis does with COUNT):
                # wait for the block time or the stop signal instead of spinning.
                await wait_or_stop(stop, self.config.block_ms / 1000)
            return
        # A pipeline of depth one: batch N's accounting step runs while batch N+1's trees are
        # built and committed, and the batch after that is read meanwhile. Each accounting step
        # still follows its own batch's tree commits; a failure anywhere leaves the entries
        # involved pending under our name, to be replayed (own pending entries on the restart
        # of this loop) or reclaimed by a replica: replays count nothing twice.
        finishing: asyncio.Future[BatchResult] | None = None
        try:
            while entries:
                ahead = asyncio.ensure_future(
                    self.consumer.read_new(None) if not stop.is_set() else _nothing()
                )
                try:
                    staged = await self._commit_trees(entries)
                    if finishing is not None:
                        await finishing
                    finishing = asyncio.ensure_future(self._finish(staged))
                except BaseException:
                    with contextlib.suppress(Exception):
                        await ahead
                    raise
                entries = await ahead
                if entries and (stop.is_set() or self._reclaim_due()):
                    await finishing
                    finishing = None
                    await self.process(entries)  # finish what was taken, then yield
                    return
        finally:
            if finishing is not None:
                await finishing

    async def drain(self) -> int:
        """Process everything in the stream now and everything pending (reclaimed whatever its
        idle time); return how many entries were handled."""
        await self.consumer.ensure_group()
        await self._ack_mode_probe()
        before = self.total.handled
        await self._drain_own_pending()
        await self._reclaim(0)
        while True:
            entries = await self.consumer.read_new(None)
            if not entries:
                break
            await self.process(entries)
        return self.total.handled - before

    async def _drain_own_pending(self) -> None:
        after = b"0-0"
        while True:
            entries = await self.consumer.read_own_pending(after)
            if not entries:
                return
            await self.process(entries)
            after = entries[-1].entry_id

    async def _reclaim(self, min_idle_ms: int) -> None:
        cursor = b"0-0"
        while True:
            entries, cursor = await self.consumer.reclaim(min_idle_ms, cursor)
            if entries:
                await self.process(entries)
            if cursor in (b"0-0", "0-0"):
                return

    async def _ack_mode_probe(self) -> str:
        if self._ack_mode is None:
            self._ack_mode = "xackdel" if await self.consumer.supports_xackdel() else "xack"
        return self._ack_mode

    # --- one batch ----------------------------------------------------------------------------
    async def process(self, entries: Sequence[StreamEntry]) -> BatchResult:
        """Account one batch of stream entries (see the module docstring for the order)."""
        return await self._finish(await self._commit_trees(entries))

    async def _commit_trees(self, entries: Sequence[StreamEntry]) -> _Staged:
        """Steps 1-3: sort the entries out and commit every session's tree."""
        result = BatchResult()
        staged = _Staged(entries, {}, [], "", result, time.monotonic())
        if not entries:
            return staged
        t0 = staged.started
        if self._trace:
            self._trace("read", len(entries))
        ack_mode = await self._ack_mode_probe()
        dead: list[tuple[StreamEntry, Rejection]] = []
        relays: dict[str, list[Relay]] = defaultdict(list)
        for entry in entries:
            if entry.deliveries > self.config.max_retries:
                reason = (
                    f"delivered {entry.deliveries} times (max_retries={self.config.max_retries})"
                )
                dead.append(
                    (entry, Rejection(entry.entry_id, reason, (entry.fields or {}).get(b"data")))
                )
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
                dead.append((entry, parsed))
            else:
                relays[parsed.session_id].append(parsed)

        late = await self._late_sessions(list(relays))
        for sid in late:
            result.late += len(relays.pop(sid))
        # Each session's tree is committed on its own (independent keys and CAS); running them
        # together lets one session's trie work overlap another's Redis round trip.
        sessions = list(relays)
        commits = await asyncio.gather(
            *(
                self.trees.apply(
                    sid, [(r.relay_hash, r.relay_bytes, r.compute_units) for r in relays[sid]]
                )
                for sid in sessions
            ),
            return_exceptions=True,
        )
        for commit in commits:  # every commit has finished: now report the first failure
            if isinstance(commit, BaseException):
                raise commit
        for sid, committed in zip(sessions, commits, strict=True):
            if not committed:  # sealed meanwhile: late
                result.late += len(relays.pop(sid))

        if self._trace:
            self._trace("smst", len(entries))
        return _Staged(entries, relays, dead, ack_mode, result, t0)

    async def _finish(self, staged: _Staged) -> BatchResult:
        """Step 4: the atomic accounting step (count once, create, dead-letter, ack), then the
        metrics and hooks."""
        entries, relays, dead, result = staged.entries, staged.relays, staged.dead, staged.result
        if not entries:
            return result
        await self._account_batch(entries, relays, dead, staged.ack_mode, result)
        if self._trace:
            self._trace("accounted", len(entries))
        result.handled = len(entries)
        result.dead = len(dead)
        self._record(result, relays, dead, staged.started)
        for sid in result.created:
            await self._fire_created(sid)
        if self._on_batch is not None:
            outcome = self._on_batch(result)
            if outcome is not None:
                await outcome
        return result

    async def _late_sessions(self, session_ids: list[str]) -> set[str]:
        """Sessions whose relays can no longer count: terminal state or sealed tree."""
        if not session_ids:
            return set()
        for _attempt in range(3):
            async with self._redis.pipeline(transaction=False) as pipe:
                for sid in session_ids:
                    pipe.type(self.store.session_key(sid))
                    pipe.hget(self.store.session_key(sid), "state")
                    pipe.exists(self.keys.smst_root_key(self.supplier, sid))
                replies = await pipe.execute(raise_on_error=False)
            legacy = [sid for i, sid in enumerate(session_ids) if replies[3 * i] == b"string"]
            if not legacy:
                break
            for sid in legacy:  # older miners' JSON snapshots: migrate, then look again
                await self.store.migrate_legacy(sid)
        else:
            raise RelayMinerError("legacy session keys kept reappearing")
        replies = [x for i, x in enumerate(replies) if i % 3]
        late: set[str] = set()
        for i, sid in enumerate(session_ids):
            state, sealed = replies[2 * i], replies[2 * i + 1]
            terminal = False
            if isinstance(state, bytes):
                try:
                    terminal = SessionState(state.decode()).is_terminal
                except ValueError:
                    terminal = False
            if terminal or sealed:
                late.add(sid)
        return late

    async def _account_batch(
        self,
        entries: Sequence[StreamEntry],
        relays: dict[str, list[Relay]],
        dead: list[tuple[StreamEntry, Rejection]],
        ack_mode: str,
        result: BatchResult,
    ) -> None:
        session_ids = list(relays)
        fence = self.config.fence
        keys: list[str] = [
            self.consumer.stream,
            self.consumer.dead_stream,
            self.store.index_key(),
            self.store.state_index_key(SessionState.ACTIVE),
            fence.key if fence else self.keys.miner_claim_key(self.supplier),
        ]
        stamp = utc_now()
        now = format_rfc3339nano(stamp)
        args: list[Any] = [
            self.consumer.group,
            ack_mode,
            self.config.session_ttl_seconds,
            self.config.effective_dedup_ttl,
            fence.token if fence else "",
            now,
            len(session_ids),
        ]
        for sid in session_ids:
            first = relays[sid][0]
            keys += [self.store.session_key(sid), self.keys.miner_dedup_session_key(sid)]
            snapshot = SessionSnapshot(
                session_id=sid,
                supplier_operator_address=first.supplier_operator_address,
                service_id=first.service_id,
                application_address=first.application_address,
                session_start_height=first.session_start_height,
                session_end_height=first.session_end_height,
                state=SessionState.ACTIVE,
                created_at=stamp,
                last_updated_at=stamp,
            )
            meta = encode_hash(snapshot, with_counters=True)
            args.append(sid)
            args.append(2 * len(meta))
            for name, value in meta.items():
                args += [name, value]
            groups: dict[int, list[bytes]] = defaultdict(list)
            for r in relays[sid]:
                groups[r.compute_units].append(r.relay_hash)
            args.append(len(groups))
            for cu, hashes in groups.items():
                args += [cu, len(hashes), *hashes]
        args.append(len(entries))
        args += [e.entry_id for e in entries]
        args.append(len(dead))
        for entry, rejection in dead:
            fields: list[Any] = [
                "id",
                entry.entry_id,
                "reason",
                rejection.reason,
                "consumer",
                self.consumer_name,
                "deliveries",
                entry.deliveries,
                "dead_at_ms",
                int(time.time() * 1000),
            ]
            if rejection.data is not None:
                fields += ["data", rejection.data]
            args += [len(fields), *fields]

        for _attempt in range(3):
            try:
                reply = await self._account(keys=keys, args=args)
            except ResponseError as err:
                if "FENCED" in str(err):
                    raise LeaseLostError(f"lease of {self.supplier} lost: {err}") from err
                raise
            if reply and reply[0] in (b"LEGACY", "LEGACY"):
                await self.store.migrate_legacy(session_ids[int(reply[1]) - 1])
                continue
            break
        else:  # pragma: no cover - a legacy key that keeps coming back
            raise RelayMinerError("legacy session keys kept reappearing during accounting")
        for i, sid in enumerate(session_ids):
            created, counted, status = (int(x) for x in reply[3 * i : 3 * i + 3])
            if created:
                result.created.append(sid)
            if status == 1:
                result.late += len(relays[sid])
                continue
            result.counted += counted
            result.duplicates += len(relays[sid]) - counted

    def _record(
        self,
        result: BatchResult,
        relays: dict[str, list[Relay]],
        dead: list[tuple[StreamEntry, Rejection]],
        t0: float,
    ) -> None:
        sup = self.supplier
        metrics.BATCH_LATENCY.labels(supplier=sup).observe(time.monotonic() - t0)
        metrics.RELAYS_MINED.labels(supplier=sup).inc(result.counted)
        if result.duplicates:
            metrics.RELAYS_REJECTED.labels(supplier=sup, reason="duplicate").inc(result.duplicates)
        if result.late:
            metrics.RELAYS_REJECTED.labels(supplier=sup, reason="session_sealed").inc(result.late)
        for _, rejection in dead:
            reason = rejection.reason.split(":")[0].split(" (")[0][:60]
            metrics.RELAYS_DEAD_LETTERED.labels(supplier=sup, reason=reason).inc()
            log.warning(
                "dead-lettered stream entry",
                extra={
                    "supplier": sup,
                    "entry_id": rejection.entry_id.decode(),
                    "reason": rejection.reason,
                },
            )
        now_ns = time.time_ns()
        for group in relays.values():
            result.published_ns.extend(r.published_at_unix_nano for r in group)
        # The publish-to-ack histogram observes 1 relay in LATENCY_SAMPLE (the hot path stays
        # cheap; the distribution is the same).
        histogram = metrics.END_TO_END_LATENCY.labels(supplier=sup)
        for published in result.published_ns[::LATENCY_SAMPLE]:
            if published > 0:
                histogram.observe(max(0.0, (now_ns - published) / 1e9))
        for name in ("handled", "counted", "duplicates", "late", "dead"):
            setattr(self.total, name, getattr(self.total, name) + getattr(result, name))
        self.total.created += result.created

    async def _fire_created(self, session_id: str) -> None:
        if self._on_created is None:
            return
        try:
            snapshot = await self.store.get(session_id)
            if snapshot is not None:
                outcome = self._on_created(snapshot)
                if outcome is not None:
                    await outcome
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session created hook failed", extra={"session_id": session_id})


async def _nothing() -> list[StreamEntry]:
    return []
