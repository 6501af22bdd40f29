"""The chain, as the session lifecycle sees it (``docs/chain.md``).

:class:`Chain` is a ``typing.Protocol``: the lifecycle depends on nothing else, so a real
Pocket node client and :class:`relayminer.chain.sim.chain.SimulatedChain` are interchangeable.
Messages
and the stored claim are the poktroll protobuf types (``relayminer.proto.poktroll_pb2``), so their
bytes are the bytes a real chain would see.

Conventions every implementation follows:

- heights are block heights; ``latest_block()`` is the newest *committed* block ``H``. A tx
  broadcast now lands in a block ``>= H + 1``, so a window ``[open, close]`` is missed once
  ``H >= close``;
- ``shared_params(height)`` returns the params effective at ``height`` (history included);
  ``shared_params(None)`` the live ones;
- ``broadcast`` is CheckTx: ``TxResult.code == 0`` means *accepted into the mempool*, not
  included. Inclusion is observed through ``tx_status`` (the tx's execution result, by hash)
  and ``get_claim``/``claims`` (proof inclusion through the claim's
  ``proof_validation_status``);
- a transport failure raises :class:`ChainUnavailableError`; a rejected tx is a ``TxResult``
  with the node's ``codespace`` and non-zero ``code``; :attr:`TxResult.reason` classifies
  them (:mod:`relayminer.chain.rejections`), and nothing decides on the ``log``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from relayminer.chain.rejections import Rejection, TxPhase, classify
from relayminer.errors import RelayMinerError
from relayminer.proto.poktroll_pb2 import Claim, MsgCreateClaim, MsgSubmitProof, SessionHeader
from relayminer.protocol.proof_requirement import ProofParams
from relayminer.protocol.windows import SharedParams

__all__ = [
    "Block",
    "Chain",
    "ChainEvent",
    "ChainUnavailableError",
    "Claim",
    "Msg",
    "MsgCreateClaim",
    "MsgSubmitProof",
    "OnChainSession",
    "Rejection",
    "ServiceParams",
    "SessionHeader",
    "TxPhase",
    "TxResult",
    "UnknownServiceError",
]

Msg = MsgCreateClaim | MsgSubmitProof


class UnknownServiceError(RelayMinerError, LookupError):
    """The chain has no such service (every chain implementation raises a subclass of this,
    so the lifecycle handles an unknown service the same way on every chain)."""


class ChainUnavailableError(RelayMinerError):
    """The chain could not be reached (retry later)."""


@dataclass(frozen=True, slots=True)
class Block:
    height: int
    hash: bytes  # 32 bytes: the block ID hash (what the chain uses as the block hash)
    time_unix: float


@dataclass(frozen=True, slots=True)
class ServiceParams:
    """A service's parameters at a height."""

    service_id: str
    compute_units_per_relay: int
    relay_difficulty_target: bytes  # 32 bytes; 32 x 0xff is the base difficulty


@dataclass(frozen=True, slots=True)
class OnChainSession:
    header: SessionHeader
    suppliers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TxResult:
    """A node's answer to a broadcast (CheckTx), or a tx's execution result (DeliverTx).

    ``codespace`` and ``code`` are the Cosmos ones; :attr:`reason` is what they mean to the
    miner (:func:`relayminer.chain.rejections.classify`). ``log`` is for humans only: nothing
    decides on it.
    """

    tx_hash: str
    code: int  # 0: accepted into the mempool (CheckTx); anything else: rejected
    log: str = ""
    codespace: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def reason(self) -> Rejection:
        return classify(self.codespace, self.code, self.log)


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """An on-chain event (``EventClaimCreated``, ``EventClaimSettled`` ...)."""

    height: int
    type: str
    attributes: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Chain(Protocol):
    """What the session lifecycle needs from a chain."""

    async def latest_block(self) -> Block:
        """The newest committed block."""
        ...

    async def wait_for_block(self, min_height: int, timeout: float | None = None) -> Block:  # noqa: ASYNC109
        """Block until a block at ``min_height`` or above is committed, then return the newest
        block. Raises ``TimeoutError`` after ``timeout`` seconds (None: no limit)."""
        ...

    async def block_hash(self, height: int) -> bytes:
        """Hash of the committed block at ``height``."""
        ...

    async def shared_params(self, height: int | None = None) -> SharedParams: ...

    async def proof_params(self) -> ProofParams:
        """Live proof params (the chain reads them live, never at a height)."""
        ...

    async def service(self, service_id: str, height: int) -> ServiceParams:
        """Compute units per relay and relay difficulty of a service at ``height``."""
        ...

    async def get_session(
        self, application_address: str, service_id: str, height: int
    ) -> OnChainSession:
        """The session of (application, service) containing ``height``."""
        ...

    async def get_claim(self, supplier: str, session_id: str) -> Claim | None:
        """The supplier's on-chain claim for the session; None when it does not exist."""
        ...

    async def claims(self, supplier: str) -> list[Claim]:
        """Every on-chain (not yet settled) claim of the supplier."""
        ...

    async def broadcast(self, msgs: Sequence[Msg]) -> TxResult:
        """Submit one transaction holding ``msgs`` (all or nothing when it executes)."""
        ...

    async def tx_status(self, tx_hash: str) -> TxResult | None:
        """How a broadcast tx executed once a block included it (DeliverTx: ``code`` 0 means
        its messages executed; non-zero means it failed at execution and changed nothing);
        None while no block holds it (pending, evicted, or a node without a tx index)."""
        ...

    async def events(self, from_height: int, to_height: int) -> list[ChainEvent]:
        """Events emitted by blocks ``from_height..to_height`` (inclusive)."""
        ...
