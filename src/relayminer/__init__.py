"""relayminer: the miner of Pocket Network's High-Availability RelayMiner, in Python.

The names below are the public contract (``../shared/API.md``); internal modules may change.
"""

from relayminer.coordinator import SessionCoordinator
from relayminer.dedup import Deduplicator, DeduplicatorConfig, RedisDeduplicator
from relayminer.errors import (
    ClosedError,
    RelayMinerError,
    SessionDecodeError,
    SessionNotFoundError,
    SessionTerminalError,
    StoreError,
)
from relayminer.keys import KeyBuilder, Namespace
from relayminer.session_store import RedisSessionStore, SessionStore, SessionStoreConfig
from relayminer.sessions import SessionSnapshot, SessionState

__all__ = [
    "ClosedError",
    "Deduplicator",
    "DeduplicatorConfig",
    "KeyBuilder",
    "Namespace",
    "RedisDeduplicator",
    "RedisSessionStore",
    "RelayMinerError",
    "SessionCoordinator",
    "SessionDecodeError",
    "SessionNotFoundError",
    "SessionSnapshot",
    "SessionState",
    "SessionStore",
    "SessionStoreConfig",
    "SessionTerminalError",
    "StoreError",
]
