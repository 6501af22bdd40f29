"""Errors of the simulated chain (all derive from :class:`relayminer.errors.RelayMinerError`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from redis.exceptions import RedisError, WatchError

from relayminer.chain.base import ChainUnavailableError
from relayminer.chain.base import UnknownServiceError as ChainUnknownServiceError
from relayminer.errors import InvalidProtocolArgumentError, RelayMinerError

__all__ = [
    "BlockProducerBusyError",
    "BlockProducerConflictError",
    "SimChainConfigError",
    "SimChainConfigMismatchError",
    "SimChainError",
    "SimChainNotInitialisedError",
    "SimChainStateError",
    "SimSessionError",
    "TxRejectedError",
    "UnknownBlockError",
    "UnknownServiceError",
    "transport_errors",
]


@contextlib.contextmanager
def transport_errors(operation: str) -> Iterator[None]:
    """Redis/transport failures become :class:`ChainUnavailableError` (a WATCH conflict is
    left alone: the producer turns it into :class:`BlockProducerConflictError`)."""
    try:
        yield
    except (RedisError, OSError) as err:
        if isinstance(err, WatchError):
            raise
        raise ChainUnavailableError(f"simulated chain: {operation} failed: {err}") from err


class SimChainError(RelayMinerError):
    """Base class of the simulated chain's errors."""


class SimChainConfigError(SimChainError, InvalidProtocolArgumentError):
    """A configuration field is invalid; ``argument`` names it."""


class SimChainNotInitialisedError(SimChainError):
    """No genesis in Redis yet: call ``SimulatedChain.init()`` first."""


class SimChainConfigMismatchError(SimChainError):
    """Redis already holds a chain created with a different configuration."""


class SimChainStateError(SimChainError):
    """Stored simulated-chain state could not be decoded."""


class BlockProducerBusyError(SimChainError):
    """Another producer holds the block-producer lease (see ``SimulatedChain.produce_block``)."""


class BlockProducerConflictError(SimChainError):
    """The chain moved while this block was being built (the lease expired meanwhile and
    another producer committed the height); nothing was written."""


class UnknownBlockError(SimChainError, LookupError):
    """No committed block at that height."""


class UnknownServiceError(SimChainError, ChainUnknownServiceError):
    """The service is not configured on the simulated chain."""


class SimSessionError(SimChainError, LookupError):
    """No session exists for the arguments (unknown application/service, bad height)."""


class TxRejectedError(SimChainError):
    """A message failed a chain check, reported the way a Pocket node reports it.

    - A ``ValidateBasic`` failure (stateless: addresses, header, root size) carries its
      registered poktroll ``proof`` code (:meth:`stateless`); a node returns it from CheckTx.
    - A message-handler failure (stateful: session, windows, claim lookup, requirement) is a
      gRPC status error, which cosmossdk.io/errors does not recognise: the node reports code 1
      in codespace ``undefined`` with the text inside (:meth:`handler`). ``text`` starts with
      poktroll's registered error wording (``x/proof/types/errors.go``).
    """

    def __init__(
        self, text: str, *, codespace: str, code: int, grpc_status: str | None = None
    ) -> None:
        super().__init__(text)
        self.text = text
        self.codespace = codespace
        self.code = code
        self.grpc_status = grpc_status

    @classmethod
    def stateless(cls, code: int, text: str) -> TxRejectedError:
        """A ``ValidateBasic`` failure: registered code ``code`` in codespace ``proof``."""
        return cls(text, codespace="proof", code=code)

    @classmethod
    def handler(cls, grpc_status: str, text: str) -> TxRejectedError:
        """A message handler's gRPC status error (``FailedPrecondition``, ``InvalidArgument``,
        ``NotFound``)."""
        return cls(text, codespace="undefined", code=1, grpc_status=grpc_status)

    def log_at(self, message_index: int) -> str:
        """The tx log a node writes when message ``message_index`` of the tx failed."""
        if self.grpc_status is None:
            return self.text
        return (
            f"failed to execute message; message index: {message_index}: "
            f"rpc error: code = {self.grpc_status} desc = {self.text}"
        )
