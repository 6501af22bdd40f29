"""PocketChain: the :class:`~relayminer.chain.base.Chain` protocol against a Pocket Shannon node.

Queries go over gRPC (:mod:`.queries`), blocks and events over CometBFT RPC (:mod:`.cometbft`),
transactions through :mod:`.broadcaster`. :meth:`PocketChain.start` refuses a node whose network
is not the configured ``chain_id``; while the node reports ``catching_up``, ``latest_block``
raises :class:`ChainUnavailableError`, so the lifecycle takes no action on stale state.

Settlement events without a session id (``EventClaimExpired``, ``EventClaimDiscarded``,
``EventSupplierSlashed``) get one from the claims this object has seen, matched on (supplier,
application, service, session end height), as the upstream events suggest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence

from relayminer.chain.base import (
    Block,
    ChainEvent,
    ChainUnavailableError,
    Claim,
    Msg,
    OnChainSession,
    ServiceParams,
    TxResult,
    UnknownServiceError,
)
from relayminer.chain.pocket.broadcaster import Broadcaster
from relayminer.chain.pocket.cometbft import CometClient
from relayminer.chain.pocket.keys import PocketKey
from relayminer.chain.pocket.queries import PocketQueries
from relayminer.errors import RelayMinerError
from relayminer.proto.poktroll_pb2 import SessionHeader
from relayminer.protocol.proof_requirement import ProofParams
from relayminer.protocol.windows import SharedParams

__all__ = ["ChainIdMismatchError", "PocketChain", "UnknownServiceError"]

log = logging.getLogger(__name__)

_SessionKey = tuple[str, str, str, int]


class ChainIdMismatchError(RelayMinerError):
    """The node serves another network than the configured ``chain_id``."""


class PocketChain:
    """A Pocket node seen through the :class:`Chain` protocol."""

    def __init__(
        self,
        *,
        chain_id: str,
        queries: PocketQueries,
        comet: CometClient,
        broadcaster: Broadcaster,
        keys: Callable[[], Mapping[str, PocketKey]],
    ) -> None:
        self.chain_id = chain_id
        self.queries = queries
        self.comet = comet
        self.broadcaster = broadcaster
        self._keys = keys
        self._latest: Block | None = None
        self._new_block = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None
        self._hashes: dict[int, bytes] = {}
        self._headers: dict[_SessionKey, str] = {}
        self.catching_up = False

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> Block:
        """Check the node (network, sync state) and return its latest block."""
        status = await self.comet.status()
        if status.network != self.chain_id:
            raise ChainIdMismatchError(
                f"the node serves network {status.network!r}, configured chain_id is "
                f"{self.chain_id!r}: refusing to sign for another chain"
            )
        self.catching_up = status.catching_up
        return await self.latest_block()

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None
        await self.comet.close()
        await self.queries.client.close()

    async def __aenter__(self) -> PocketChain:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- blocks ---------------------------------------------------------------------------

    def _observe(self, block: Block) -> None:
        self._hashes[block.height] = block.hash
        if self._latest is None or block.height > self._latest.height:
            self._latest = block
            self._new_block.set()
            self._new_block = asyncio.Event()

    @property
    def last_seen_block(self) -> Block | None:
        """The latest block observed so far, without asking the node."""
        return self._latest

    async def latest_block(self) -> Block:
        if self._follower is None or self._latest is None:
            status = await self.comet.status()
            self.catching_up = status.catching_up
            if not self.catching_up:
                self._observe(await self.comet.block(status.latest_height))
        if self.catching_up:
            raise ChainUnavailableError("the node is catching up: no lifecycle action")
        assert self._latest is not None
        return self._latest

    async def _follow(self, after: int) -> None:
        async for block in self.comet.blocks(after):
            self._observe(block)

    async def wait_for_block(self, min_height: int, timeout: float | None = None) -> Block:  # noqa: ASYNC109 - the Chain protocol's signature
        latest = await self.latest_block()
        if self._follower is None:
            self._follower = asyncio.create_task(self._follow(latest.height))
        async with asyncio.timeout(timeout):
            while self._latest is None or self._latest.height < min_height:
                await self._new_block.wait()
        return self._latest

    async def block_hash(self, height: int) -> bytes:
        cached = self._hashes.get(height)
        if cached is None:
            cached = (await self.comet.block(height)).hash
            self._hashes[height] = cached
        return cached

    # --- queries --------------------------------------------------------------------------

    async def shared_params(self, height: int | None = None) -> SharedParams:
        return await self.queries.shared_params(height)

    async def proof_params(self) -> ProofParams:
        return await self.queries.proof_params()

    async def service(self, service_id: str, height: int) -> ServiceParams:
        cupr = await self.queries.compute_units_per_relay(service_id, height)
        target = await self.queries.relay_difficulty_target(service_id, height)
        if cupr is None or target is None:
            raise UnknownServiceError(f"unknown service {service_id!r}")
        return ServiceParams(service_id, cupr, target)

    async def get_session(
        self, application_address: str, service_id: str, height: int
    ) -> OnChainSession:
        session = await self.queries.session(application_address, service_id, height)
        if session is None:
            raise ChainUnavailableError(
                f"no session for application {application_address} service {service_id!r} "
                f"at height {height}"
            )
        return session

    def _remember(self, supplier: str, header: SessionHeader) -> None:
        key = (
            supplier,
            header.application_address,
            header.service_id,
            header.session_end_block_height,
        )
        self._headers[key] = header.session_id

    async def get_claim(self, supplier: str, session_id: str) -> Claim | None:
        claim = await self.queries.claim(supplier, session_id)
        if claim is not None:
            self._remember(supplier, claim.session_header)
        return claim

    async def claims(self, supplier: str) -> list[Claim]:
        found = await self.queries.claims(supplier)
        for claim in found:
            self._remember(supplier, claim.session_header)
        found.sort(
            key=lambda c: (c.session_header.session_end_block_height, c.session_header.session_id)
        )
        return found

    # --- transactions ---------------------------------------------------------------------

    async def broadcast(self, msgs: Sequence[Msg]) -> TxResult:
        if not msgs:
            return TxResult(tx_hash="", code=1, log="tx holds no message")
        signers = {m.supplier_operator_address for m in msgs}
        if len(signers) != 1:
            return TxResult(tx_hash="", code=1, log="one tx carries one supplier's messages")
        (signer,) = signers
        key = self._keys().get(signer)
        if key is None:
            return TxResult(
                tx_hash="", code=4, codespace="sdk", log=f"no signing key for supplier {signer}"
            )
        for msg in msgs:
            self._remember(signer, msg.session_header)
        latest = await self.latest_block()
        anchor_ns = int(latest.time_unix * 1e9)
        return await self.broadcaster.broadcast(key, msgs, anchor_ns)

    async def tx_status(self, tx_hash: str) -> TxResult | None:
        """``cosmos.tx.v1beta1.Service/GetTx`` (the node's tx index): the DeliverTx result, or
        None while no block holds the tx (NotFound)."""
        resp = await self.broadcaster.get_tx(tx_hash)
        if resp is None or not resp.HasField("tx_response") or resp.tx_response.height <= 0:
            return None
        r = resp.tx_response
        return TxResult(
            tx_hash=r.txhash or tx_hash, code=r.code, log=r.raw_log, codespace=r.codespace
        )

    # --- events ---------------------------------------------------------------------------

    def _with_session_id(self, event: ChainEvent) -> ChainEvent:
        attrs = event.attributes
        if attrs.get("session_id") or "supplier_operator_address" not in attrs:
            return event
        try:
            key = (
                attrs["supplier_operator_address"],
                attrs.get("application_address", ""),
                attrs.get("service_id", ""),
                int(attrs.get("session_end_block_height", "0")),
            )
        except ValueError:
            return event
        session_id = self._headers.get(key)
        if session_id is None:
            return event
        return ChainEvent(event.height, event.type, {**attrs, "session_id": session_id})

    async def events(self, from_height: int, to_height: int) -> list[ChainEvent]:
        out: list[ChainEvent] = []
        for height in range(max(from_height, 1), to_height + 1):
            out.extend(self._with_session_id(e) for e in await self.comet.block_results(height))
        return out
