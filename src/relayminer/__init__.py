"""relayminer: the miner of Pocket Network's High-Availability RelayMiner, in Python.

The names below are the public contract (``../shared/API.md``); internal modules may change.
"""

from relayminer.coordinator import SessionCoordinator
from relayminer.dedup import Deduplicator, DeduplicatorConfig, RedisDeduplicator
from relayminer.errors import (
    ClosedError,
    InvalidProtocolArgumentError,
    RelayMinerError,
    SessionDecodeError,
    SessionNotFoundError,
    SessionTerminalError,
    StoreError,
)
from relayminer.gorand import GoRand
from relayminer.keys import KeyBuilder, Namespace
from relayminer.leases import Fence
from relayminer.mapstore import MapStore, MemoryMapStore
from relayminer.proof_requirement import (
    ProofParams,
    ProofRequirementReason,
    claim_sample,
    claimed_upokt,
    proof_requirement,
)
from relayminer.protocol import (
    SharedParams,
    claim_window_close_height,
    claim_window_open_height,
    earliest_claim_commit_height,
    earliest_proof_commit_height,
    grace_period_end_height,
    pending_sessions,
    proof_seed_height,
    proof_window_close_height,
    proof_window_open_height,
    session_end_height,
    session_end_to_proof_close_blocks,
    session_number,
    session_start_height,
    settlement_height,
)
from relayminer.relay_difficulty import difficulty_multiplier
from relayminer.relays import MinedRelayMessage
from relayminer.session_store import RedisSessionStore, SessionStore, SessionStoreConfig
from relayminer.sessions import SessionSnapshot, SessionState
from relayminer.smst import (
    SMSTError,
    SMSTNodeCorruptError,
    SMSTNodeMissingError,
    SparseMerkleSumTrie,
)
from relayminer.smst_proof import (
    ClosestProof,
    CompactClosestProof,
    proof_path,
    verify_closest_proof,
    verify_compact_closest_proof,
)
from relayminer.worker import RelayWorker, WorkerConfig

__all__ = [
    "ClosedError",
    "ClosestProof",
    "CompactClosestProof",
    "Deduplicator",
    "DeduplicatorConfig",
    "Fence",
    "GoRand",
    "InvalidProtocolArgumentError",
    "KeyBuilder",
    "MapStore",
    "MemoryMapStore",
    "MinedRelayMessage",
    "Namespace",
    "ProofParams",
    "ProofRequirementReason",
    "RedisDeduplicator",
    "RedisSessionStore",
    "RelayMinerError",
    "RelayWorker",
    "SMSTError",
    "SMSTNodeCorruptError",
    "SMSTNodeMissingError",
    "SessionCoordinator",
    "SessionDecodeError",
    "SessionNotFoundError",
    "SessionSnapshot",
    "SessionState",
    "SessionStore",
    "SessionStoreConfig",
    "SessionTerminalError",
    "SharedParams",
    "SparseMerkleSumTrie",
    "StoreError",
    "WorkerConfig",
    "claim_sample",
    "claim_window_close_height",
    "claim_window_open_height",
    "claimed_upokt",
    "difficulty_multiplier",
    "earliest_claim_commit_height",
    "earliest_proof_commit_height",
    "grace_period_end_height",
    "pending_sessions",
    "proof_path",
    "proof_requirement",
    "proof_seed_height",
    "proof_window_close_height",
    "proof_window_open_height",
    "session_end_height",
    "session_end_to_proof_close_blocks",
    "session_number",
    "session_start_height",
    "settlement_height",
    "verify_closest_proof",
    "verify_compact_closest_proof",
]
