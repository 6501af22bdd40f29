"""Prometheus metrics of relayminer (namespace ``ha``).

Names follow the Go miner where it has one. Deliberate difference: no ``session_id`` label
anywhere: session ids are unbounded, and a label per session grows the scrape forever.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# --- deduplicator -------------------------------------------------------------------------
DEDUP_HITS = Counter(
    "ha_miner_dedup_redis_cache_hits_total", "Relay hashes found in a session's dedup set."
)
DEDUP_MISSES = Counter(
    "ha_miner_dedup_misses_total", "Relay hashes not found in a session's dedup set."
)
DEDUP_ERRORS = Counter("ha_miner_dedup_errors_total", "Deduplicator Redis errors.", ["operation"])
DEDUP_MARKED = Counter("ha_miner_dedup_marked_total", "Relay hashes marked as processed.")

# --- sessions -----------------------------------------------------------------------------
SNAPSHOTS_SAVED = Counter(
    "ha_miner_session_snapshots_saved_total", "Session snapshots written.", ["supplier"]
)
SESSIONS_CREATED = Counter(
    "ha_miner_sessions_created_total",
    "Sessions created (first relay seen).",
    ["supplier", "service_id"],
)
SESSION_DECODE_ERRORS = Counter(
    "ha_miner_session_decode_errors_total",
    "Stored session snapshots that could not be decoded (skipped when listing).",
    ["supplier"],
)
SESSIONS_BY_STATE = Gauge(
    "ha_miner_sessions", "Sessions known to the lifecycle, by state.", ["supplier", "state"]
)

# --- relay pipeline -----------------------------------------------------------------------
RELAYS_CONSUMED = Counter(
    "ha_miner_relays_consumed_from_stream_total", "Stream entries read.", ["supplier"]
)
RELAYS_MINED = Counter(
    "ha_miner_relays_mined_total",
    "Relays inserted into an SMST and counted once.",
    ["supplier"],
)
RELAYS_REJECTED = Counter(
    "ha_miner_relays_rejected_total",
    "Relays acked without being counted.",
    ["supplier", "reason"],
)
RELAYS_DEAD_LETTERED = Counter(
    "ha_miner_relays_dead_lettered_total",
    "Stream entries moved to the dead-letter stream.",
    ["supplier", "reason"],
)
RELAYS_RECLAIMED = Counter(
    "ha_transport_redis_claimed_total",
    "Pending entries reclaimed with XAUTOCLAIM.",
    ["supplier"],
)
STREAM_LAG = Gauge(
    "ha_transport_redis_stream_lag",
    "Entries in the stream not yet delivered to the group.",
    ["supplier"],
)
STREAM_PENDING = Gauge(
    "ha_transport_redis_pending_messages", "Entries delivered but not acked.", ["supplier"]
)
RECONNECTS = Counter(
    "ha_transport_redis_reconnection_attempts_total",
    "Consumer reconnection attempts.",
    ["component"],
)
BATCH_LATENCY = Histogram(
    "ha_miner_batch_processing_seconds",
    "Time to process one batch of stream entries.",
    ["supplier"],
)
END_TO_END_LATENCY = Histogram(
    "ha_transport_redis_end_to_end_latency_seconds",
    "Publish-to-ack latency of relays.",
    ["supplier"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# --- lifecycle and HA ---------------------------------------------------------------------
CLAIMS_SUBMITTED = Counter(
    "ha_miner_claims_submitted_total", "Claims accepted by the chain's mempool.", ["supplier"]
)
CLAIMS_FAILED = Counter(
    "ha_miner_claims_failed_total", "Claim submissions that failed.", ["supplier", "reason"]
)
PROOFS_SUBMITTED = Counter(
    "ha_miner_proofs_submitted_total", "Proofs accepted by the chain's mempool.", ["supplier"]
)
PROOFS_FAILED = Counter(
    "ha_miner_proofs_failed_total", "Proof submissions that failed.", ["supplier", "reason"]
)
REBROADCASTS = Counter(
    "ha_miner_rebroadcasts_total",
    "Claims and proofs resent by the inclusion reconciler.",
    ["supplier", "phase"],
)
TXS_FAILED_AT_EXECUTION = Counter(
    "ha_miner_txs_failed_at_execution_total",
    "Claims and proofs included in a block with a non-zero result code (resent while their "
    "window is open).",
    ["supplier", "phase"],
)
SUBMIT_DELAY_BLOCKS = Histogram(
    "ha_miner_submit_delay_blocks",
    "Blocks from a claim or proof window opening to the broadcast of that claim or proof.",
    ["phase"],
    buckets=(0, 1, 2, 3, 4, 6, 8, 12, 16),
)
MINING_PAUSE_SECONDS = Counter(
    "ha_miner_mining_paused_seconds_total",
    "Seconds relay workers waited between batches for lifecycle passes (lifecycle priority).",
)
LEASE_OWNED = Gauge(
    "ha_miner_supplier_lease_owned",
    "1 while this replica owns the supplier's lease.",
    ["supplier"],
)

# --- reliability --------------------------------------------------------------------------
RETRIES = Counter(
    "ha_miner_redis_retries_total",
    "Steps retried in place after an infrastructure error (OOM, LOADING, READONLY, timeouts...).",
    ["supplier", "operation"],
)
BATCH_FAILURES = Counter(
    "ha_miner_batch_failures_total",
    "Sessions of a batch whose processing failed; their entries stay pending (see logs).",
    ["supplier"],
)
WAIT_REPLICAS_SHORT = Counter(
    "ha_miner_wait_replicas_short_total",
    "Accounted batches fewer than redis.wait_replicas replicas acknowledged in time (the batch "
    "is acked on the master; see logs).",
    ["supplier"],
)
STATE_LOST = Counter(
    "ha_miner_state_lost_total",
    "Times Redis was found to have lost the miner's state while it ran (restart without "
    "persistence, FLUSHALL, failover to an empty replica).",
    ["supplier"],
)
CLAIMS_WITH_STREAM_BACKLOG = Counter(
    "ha_miner_claims_with_stream_backlog_total",
    "Claim groups sealed at their last chance while relays published before their grace "
    "period ended were still in the stream (those relays are refused as late).",
    ["supplier"],
)
TREE_MISMATCHES = Counter(
    "ha_miner_tree_mismatch_total",
    "Sessions whose tree disagreed with their counters or was incomplete before the claim.",
    ["supplier", "reason"],
)
REDIS_EVICTING = Gauge(
    "ha_miner_redis_eviction_policy_evicting",
    "1 while the Redis maxmemory-policy may evict the miner's keys (redis.allow_eviction).",
)

# --- Pocket chain (chain.type: pocket) -----------------------------------------------------
CHAIN_BALANCE = Gauge(
    "ha_miner_chain_balance_upokt",
    "Liquid uPOKT of a supplier operator account (pays the claim/proof tx fees).",
    ["address"],
)
CHAIN_BLOCK_AGE = Gauge(
    "ha_miner_chain_block_age_seconds",
    "Seconds since the header time of the node's latest block this miner saw.",
)
CHAIN_LAST_QUERY_AGE = Gauge(
    "ha_miner_chain_last_query_age_seconds",
    "Seconds since the node last answered a gRPC query.",
)
