"""Errors of the simulated chain (all derive from :class:`relayminer.errors.RelayMinerError`)."""

from __future__ import annotations

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
]


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


class UnknownServiceError(SimChainError, LookupError):
    """The service is not configured on the simulated chain."""


class SimSessionError(SimChainError, LookupError):
    """No session exists for the arguments (unknown application/service, bad height)."""


class TxRejectedError(SimChainError):
    """A message failed a chain check; ``log`` says why (it becomes the tx log)."""

    def __init__(self, log_text: str) -> None:
        super().__init__(log_text)
        self.log = log_text
