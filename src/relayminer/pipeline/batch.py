"""One batch's work for the relay worker: stage it (sort, pre-check, commit the Go layout's
trees) and account it in the one atomic step.

The worker (:mod:`relayminer.pipeline.worker`) owns the loop, the retries in place and the
hooks; this class owns what happens to the entries of a batch, so that the order of the steps
and the confinement of a failing session to its own entries can be read in one place (the
steps are described in the worker's module docstring).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from relayminer import metrics
from relayminer.errors import LeaseLostError
from relayminer.pipeline.batch_result import BatchResult
from relayminer.pipeline.consumer import StreamConsumer, StreamEntry
from relayminer.pipeline.relays import Relay
from relayminer.pipeline.retry import is_infrastructure_error
from relayminer.pipeline.sorting import (
    OVERFLOW_REASON,
    BatchSorter,
    SortedBatch,
    dead_letter,
    session_relays,
)
from relayminer.sessions.accounting import (
    STATUS_MISSING,
    STATUS_TERMINAL,
    ComputeUnitsOverflowError,
    DeadLetter,
    SessionMissing,
    SessionOutcome,
    StreamAck,
)
from relayminer.sessions.coordinator import SessionCoordinator
from relayminer.smst.redis_store import RedisSMSTStore

__all__ = ["KNOWN_IDLE_SECONDS", "KNOWN_SESSIONS", "BatchAccountant", "StagedBatch", "TraceHook"]

# The worker's logger: the batch's log lines are the worker's, as they were before the split.
log = logging.getLogger("relayminer.pipeline.worker")
T = TypeVar("T")

#: sessions remembered as existing (beyond it the oldest is sent with its snapshot again)
KNOWN_SESSIONS = 100_000
#: a session no batch touched for this long is forgotten too (sent with its snapshot again if
#: it gets relays later): the memory of a long run follows its live sessions, not its history
KNOWN_IDLE_SECONDS = 120.0

#: ``op`` retried in place on infrastructure errors while the worker's loop runs
InPlace = Callable[[str, Callable[[], Awaitable[T]]], Awaitable[T]]
#: Called at each step of a batch ("read", "smst", "accounted") with the batch size; the
#: crash tests use it to kill the process between steps ("smst": trees committed in the Go
#: layout; in the journal layout, the batch sorted and nothing written yet).
TraceHook = Callable[[str, int], None]


@dataclass
class StagedBatch:
    """A batch whose trees are committed and whose accounting step is due."""

    entries: Sequence[StreamEntry]
    batch: SortedBatch
    #: entries left pending because their session's work failed (a failure is recorded)
    failed: set[bytes]
    ack_mode: str
    result: BatchResult
    started: float


class BatchAccountant:
    """Stages and accounts the batches of one supplier's stream (steps 1-4 of the worker)."""

    def __init__(
        self,
        *,
        supplier: str,
        consumer: StreamConsumer,
        sorter: BatchSorter,
        coordinator: SessionCoordinator,
        trees: RedisSMSTStore | None,
        dedup_ttl_seconds: int,
        ack_mode: Callable[[], Awaitable[str]],
        in_place: InPlace[object],
        trace: TraceHook | None,
    ) -> None:
        self.supplier = supplier
        self.consumer = consumer
        self.sorter = sorter
        self.coordinator = coordinator
        #: the Go layout's trees (None in the journal layout: the accounting step writes leaves)
        self.trees = trees
        self.journal = trees is None
        self.dedup_ttl_seconds = dedup_ttl_seconds
        self._ack_mode = ack_mode
        self._in_place = in_place
        self._trace = trace
        #: sessions seen to exist -> when a batch last touched them, least recent first: their
        #: snapshots are not sent with every batch
        self.known: OrderedDict[str, float] = OrderedDict()
        #: the clock of :attr:`known` (tests move it)
        self.clock: Callable[[], float] = time.monotonic

    # --- steps 1-3 ----------------------------------------------------------------------------
    async def stage(self, entries: Sequence[StreamEntry]) -> StagedBatch:
        """Steps 1-3: sort the entries out and commit every session's tree."""
        result = BatchResult()
        started = time.monotonic()
        if not entries:
            return StagedBatch(entries, SortedBatch(), set(), "", result, started)
        if self._trace:
            self._trace("read", len(entries))
        ack_mode = await self._ack_mode()
        batch = await self.sorter.sort(entries)
        if not self.journal:  # the journal's accounting step checks all of it itself
            await self.sorter.precheck(batch)
        result.late = batch.late
        if self.trees is None:  # journal layout: the leaves are written by the accounting step
            if self._trace:
                self._trace("smst", len(entries))  # the same crash point: nothing written yet
            return StagedBatch(entries, batch, set(), ack_mode, result, started)
        trees = self.trees
        # Each session's tree is committed on its own (independent keys and CAS); running them
        # together lets one session's trie work overlap another's Redis round trip.
        sessions = list(batch.relays)
        commits = await asyncio.gather(
            *(
                trees.apply(
                    sid,
                    [(r.relay_hash, r.relay_bytes, r.compute_units) for r in batch.relays[sid]],
                )
                for sid in sessions
            ),
            return_exceptions=True,
        )
        failed: set[bytes] = set()
        for sid, commit in zip(sessions, commits, strict=True):
            if isinstance(commit, LeaseLostError | asyncio.CancelledError):
                raise commit
            if isinstance(commit, BaseException):
                if is_infrastructure_error(commit) or not isinstance(commit, Exception):
                    raise commit  # the whole step is retried in place
                failed |= await self.session_failed(sid, batch.relays.pop(sid), commit)
            elif not commit:  # sealed meanwhile: late
                result.late += len(batch.relays.pop(sid))
        if self._trace:
            self._trace("smst", len(entries))
        return StagedBatch(entries, batch, failed, ack_mode, result, started)

    async def session_failed(self, sid: str, relays: list[Relay], err: Exception) -> set[bytes]:
        """One session's work failed for a reason of its own: its entries stay pending, with a
        failure recorded against each (the retry cap counts those), and the cause is logged."""
        ids = [r.entry_id for r in relays]
        metrics.BATCH_FAILURES.labels(supplier=self.supplier).inc()
        log.error(
            "session work failed; its entries stay pending",
            exc_info=err,
            extra={"supplier": self.supplier, "session_id": sid, "entries": len(ids)},
        )
        if self.trees is not None:
            self.trees.forget(sid)
        await self._in_place(
            "record failures",
            lambda: self.sorter.record_failures(ids, f"{type(err).__name__}: {err}"),
        )
        return set(ids)

    async def recommit(self, staged: StagedBatch) -> None:
        """Go layout, before an accounting step is retried in place: commit the batch's trees
        again. The first commit may have gone to a master that was lost since (failover): the
        retried step would then count relays whose leaves the new master's tree lacks. The
        commit is idempotent, and a replay checks ``live_root`` in Redis (redis_store.py)."""
        if self.trees is None:
            return
        batch = staged.batch
        for sid in list(batch.relays):
            leaves = [(r.relay_hash, r.relay_bytes, r.compute_units) for r in batch.relays[sid]]
            if not await self.trees.apply(sid, leaves):  # sealed meanwhile: late
                staged.result.late += len(batch.relays.pop(sid))

    # --- step 4 -------------------------------------------------------------------------------
    def _ack(
        self, staged: StagedBatch, ids: Sequence[bytes], dead: Sequence[DeadLetter]
    ) -> StreamAck:
        return StreamAck(
            stream=self.consumer.stream,
            dead_stream=self.consumer.dead_stream,
            failures=self.sorter.failures_key,
            group=self.consumer.group,
            mode=staged.ack_mode,
            consumer=self.consumer.consumer,
            entry_ids=ids,
            dead=dead,
        )

    async def account(self, staged: StagedBatch) -> BatchResult:
        """Count the batch in one step; a session that cannot be counted is confined: it is
        dead-lettered (overflow) or left pending (any other error of its own)."""
        batch, result = staged.batch, staged.result
        while True:
            in_sessions = {r.entry_id for rs in batch.relays.values() for r in rs}
            others = [
                e.entry_id
                for e in staged.entries
                if e.entry_id not in in_sessions and e.entry_id not in staged.failed
            ]
            sessions = [
                session_relays(sid, rs, journal=self.journal, known=sid in self.known)
                for sid, rs in batch.relays.items()
            ]
            try:
                outcomes = await self.coordinator.account_batch(
                    sessions,
                    dedup_ttl_seconds=self.dedup_ttl_seconds,
                    ack=self._ack(staged, [*others, *in_sessions], batch.dead),
                )
                break
            except ComputeUnitsOverflowError as err:  # nothing written: keep what fits, rerun
                await self.sorter.trim_overflow(batch, err.session_id)
            except SessionMissing as missing:  # nothing written: send its snapshot, rerun
                self.known.pop(missing.session_id, None)
            except LeaseLostError:
                raise
            except Exception as err:
                if is_infrastructure_error(err) or not sessions:
                    raise
                await self._account_apart(staged, err)
                return result
        self._add_outcomes(result, outcomes)
        now = self.clock()
        known = self.known
        for outcome in outcomes:
            if outcome.status != STATUS_MISSING:
                known[outcome.session_id] = now
                known.move_to_end(outcome.session_id)
        idle_since = now - KNOWN_IDLE_SECONDS
        while known and (len(known) > KNOWN_SESSIONS or next(iter(known.values())) < idle_since):
            known.popitem(last=False)
        return result

    async def _account_apart(self, staged: StagedBatch, first: Exception) -> None:
        """The batch step failed for a reason that is not the infrastructure's: account each
        session on its own so only the culprit's entries stay pending."""
        batch, result = staged.batch, staged.result
        log.warning(
            "batch accounting failed; accounting its sessions one by one",
            extra={"supplier": self.supplier, "error": repr(first)},
        )
        in_sessions = {r.entry_id for rs in batch.relays.values() for r in rs}
        others = [
            e.entry_id
            for e in staged.entries
            if e.entry_id not in in_sessions and e.entry_id not in staged.failed
        ]
        await self.coordinator.account_batch([], ack=self._ack(staged, others, batch.dead))
        for sid in list(batch.relays):
            relays = batch.relays[sid]
            try:
                outcomes = await self.coordinator.account_batch(
                    [session_relays(sid, relays, journal=self.journal)],
                    dedup_ttl_seconds=self.dedup_ttl_seconds,
                    ack=self._ack(staged, [r.entry_id for r in relays], []),
                )
            except ComputeUnitsOverflowError:
                dead = [dead_letter(batch.entries[r.entry_id], OVERFLOW_REASON) for r in relays]
                await self.coordinator.account_batch(
                    [], ack=self._ack(staged, [r.entry_id for r in relays], dead)
                )
                batch.dead += dead
                batch.relays.pop(sid)
                continue
            except LeaseLostError:
                raise
            except Exception as err:
                if is_infrastructure_error(err):
                    raise
                staged.failed |= await self.session_failed(sid, batch.relays.pop(sid), err)
                continue
            self._add_outcomes(result, outcomes)

    @staticmethod
    def _add_outcomes(result: BatchResult, outcomes: Sequence[SessionOutcome]) -> None:
        for outcome in outcomes:
            if outcome.created:
                result.created.append(outcome.session_id)
            if outcome.status == STATUS_TERMINAL:
                result.late += outcome.relays
                continue
            result.counted += outcome.counted
            result.duplicates += outcome.duplicates
