"""What one batch of the relay worker did, and the metrics and logs it moves."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from relayminer import metrics
from relayminer.pipeline.relays import Relay
from relayminer.sessions.accounting import DeadLetter

__all__ = ["LATENCY_SAMPLE", "BatchResult", "record_batch"]

log = logging.getLogger("relayminer.pipeline.worker")

#: the publish-to-ack histogram observes 1 relay in this many (the hot path stays cheap; the
#: distribution is the same)
LATENCY_SAMPLE = 16


@dataclass
class BatchResult:
    """One batch's outcome; the worker's running total (``RelayWorker.total``) is one too, and
    takes only the counts of each batch (:func:`record_batch`): a total that kept every created
    session id grew by one string per session for as long as the worker ran."""

    handled: int = 0  # entries acked (counted, duplicate, late or dead-lettered)
    counted: int = 0  # relays counted for the first time
    duplicates: int = 0
    late: int = 0  # relays of terminal or sealed sessions
    dead: int = 0
    sessions_created: int = 0
    #: the sessions this batch created (empty in a running total)
    created: list[str] = field(default_factory=list)
    #: ``published_at_unix_nano`` of the relays of this batch (0 when the publisher set none);
    #: with the time the batch was acked this gives publish-to-ack latencies
    published_ns: list[int] = field(default_factory=list)
    #: the sessions with relays in this batch (counted, duplicate or late): the lifecycle
    #: builds a session's tree ahead only once a whole block went by without one
    sessions: list[str] = field(default_factory=list)


def record_batch(
    supplier: str,
    total: BatchResult,
    result: BatchResult,
    relays: dict[str, list[Relay]],
    dead: list[DeadLetter],
    t0: float,
) -> None:
    """Move the batch's metrics, log its dead letters and add it to ``total``."""
    sup = supplier
    metrics.BATCH_LATENCY.labels(supplier=sup).observe(time.monotonic() - t0)
    metrics.RELAYS_MINED.labels(supplier=sup).inc(result.counted)
    if result.duplicates:
        metrics.RELAYS_REJECTED.labels(supplier=sup, reason="duplicate").inc(result.duplicates)
    if result.late:
        metrics.RELAYS_REJECTED.labels(supplier=sup, reason="session_sealed").inc(result.late)
    for letter in dead:
        reason = letter.reason.split(":")[0].split(" (")[0][:60]
        metrics.RELAYS_DEAD_LETTERED.labels(supplier=sup, reason=reason).inc()
        log.warning(
            "dead-lettered stream entry",
            extra={"supplier": sup, "entry_id": letter.entry_id.decode(), "reason": letter.reason},
        )
    result.sessions = list(relays)
    now_ns = time.time_ns()
    for group in relays.values():
        result.published_ns.extend(r.published_at_unix_nano for r in group)
    histogram = metrics.END_TO_END_LATENCY.labels(supplier=sup)
    for published in result.published_ns[::LATENCY_SAMPLE]:
        if published > 0:
            histogram.observe(max(0.0, (now_ns - published) / 1e9))
    result.sessions_created = len(result.created)
    for name in ("handled", "counted", "duplicates", "late", "dead", "sessions_created"):
        setattr(total, name, getattr(total, name) + getattr(result, name))
