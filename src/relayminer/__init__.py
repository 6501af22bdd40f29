"""relayminer: the miner of Pocket Network's High-Availability RelayMiner, in Python."""

from relayminer.errors import (
    ClosedError,
    RelayMinerError,
    SessionDecodeError,
    SessionNotFoundError,
    SessionTerminalError,
)
from relayminer.keys import KeyBuilder, Namespace

__all__ = [
    "ClosedError",
    "KeyBuilder",
    "Namespace",
    "RelayMinerError",
    "SessionDecodeError",
    "SessionNotFoundError",
    "SessionTerminalError",
]
