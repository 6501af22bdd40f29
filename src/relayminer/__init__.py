"""relayminer: the miner of Pocket Network's High-Availability RelayMiner, in Python.

The names below are the public contract (``../shared/API.md``); internal modules may change.
"""

from relayminer.chain.pocket.keys import PocketKey
from relayminer.chain.pocket.tx import sign_tx, tx_hash
from relayminer.errors import (
    ClosedError,
    InvalidProtocolArgumentError,
    RelayMinerError,
    SessionDecodeError,
    SessionNotFoundError,
    SessionTerminalError,
    StoreError,
)
from relayminer.keys import KeyBuilder, Namespace
from relayminer.pipeline.relays import MinedRelayMessage
from relayminer.pipeline.worker import RelayWorker, WorkerConfig
from relayminer.proto.poktroll_pb2 import MsgCreateClaim, MsgSubmitProof, SessionHeader
from relayminer.protocol.gorand import GoRand
from relayminer.protocol.proof_requirement import (
    ProofParams,
    ProofRequirementReason,
    claim_sample,
    claimed_upokt,
    proof_requirement,
)
from relayminer.protocol.relay_difficulty import difficulty_multiplier
from relayminer.protocol.windows import (
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
from relayminer.runtime.leases import Fence
from relayminer.sessions.coordinator import SessionCoordinator
from relayminer.sessions.dedup import Deduplicator, DeduplicatorConfig, RedisDeduplicator
from relayminer.sessions.model import SessionSnapshot, SessionState
from relayminer.sessions.store import RedisSessionStore, SessionStore, SessionStoreConfig
from relayminer.smst.mapstore import MapStore, MemoryMapStore
from relayminer.smst.proof import (
    ClosestProof,
    CompactClosestProof,
    proof_path,
    verify_closest_proof,
    verify_compact_closest_proof,
)
from relayminer.smst.tree_root import session_tree_root
from relayminer.smst.trie import (
    SMSTError,
    SMSTNodeCorruptError,
    SMSTNodeMissingError,
    SparseMerkleSumTrie,
)

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
    "MsgCreateClaim",
    "MsgSubmitProof",
    "Namespace",
    "PocketKey",
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
    "SessionHeader",
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
    "session_tree_root",
    "settlement_height",
    "sign_tx",
    "tx_hash",
    "verify_closest_proof",
    "verify_compact_closest_proof",
]
