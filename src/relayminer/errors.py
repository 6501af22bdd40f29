"""Exception hierarchy of relayminer.

Every error raised on purpose derives from :class:`RelayMinerError`. Errors caused by Redis keep
their cause (``raise ... from err``) so callers and logs see the whole chain.
"""

from __future__ import annotations


class RelayMinerError(Exception):
    """Base class of every relayminer error."""


class ClosedError(RelayMinerError):
    """The component was closed and refuses the call."""


class SessionNotFoundError(RelayMinerError, LookupError):
    """No snapshot exists for the session."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session not found: {session_id}")
        self.session_id = session_id


class SessionTerminalError(RelayMinerError):
    """The session is in a terminal state; its counters no longer move."""

    def __init__(self, session_id: str = "") -> None:
        text = "session is in terminal state"
        super().__init__(f"{text}: {session_id}" if session_id else text)
        self.session_id = session_id


class SessionDecodeError(RelayMinerError, ValueError):
    """A stored session snapshot could not be decoded (names the field)."""

    def __init__(self, key: str, field: str, reason: str) -> None:
        super().__init__(f"decode {field} of {key}: {reason}")
        self.key = key
        self.field = field
        self.reason = reason


class StoreError(RelayMinerError):
    """A Redis operation of a store failed; the Redis error is the ``__cause__``."""


class InvalidProtocolArgumentError(RelayMinerError, ValueError):
    """An argument of a protocol function (or a parameter field) has an invalid value.

    ``argument`` names the offending argument or dataclass field.

    >>> err = InvalidProtocolArgumentError("num_blocks_per_session", "must be >= 1, got 0")
    >>> str(err), err.argument
    ('invalid num_blocks_per_session: must be >= 1, got 0', 'num_blocks_per_session')
    """

    def __init__(self, argument: str, reason: str) -> None:
        super().__init__(f"invalid {argument}: {reason}")
        self.argument = argument
        self.reason = reason


class LeaseLostError(RelayMinerError):
    """The supplier's lease moved to another replica: this one must stop writing for it."""
