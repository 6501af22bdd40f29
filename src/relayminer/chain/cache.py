"""One replica's chain reads, shared by every supplier it owns (``docs/lifecycle.md``, "Scale").

Each owned supplier's lifecycle makes a pass per block. Most of what a pass reads is the same
for every supplier: the block's events, the shared and proof params, block hashes, services and
sessions at a height. Asked per supplier, a replica owning 1,000 suppliers would send 1,000
``block_results`` and params queries to its node every block: the Go miner's window handling
stalled that way at about 600 suppliers per replica.

:class:`SharedChainReads` wraps any :class:`~relayminer.chain.base.Chain` and answers those
reads once per replica:

- immutable reads (a block hash, params or a service *at a height*, a session, the events of a
  committed block, the result of a tx already in a block) are kept in bounded LRU maps;
- live reads (params at ``None``, the proof params) are kept until a newer block is seen;
- concurrent identical reads share one request (the suppliers of one block ask at once), the
  newest block included;
- a committed block's events are indexed by supplier once
  (:meth:`SharedChainReads.supplier_events`): each supplier's settlement reads its own, instead
  of every supplier scanning every event of the block (1,000 suppliers x the 10,000 claim
  events of a busy block is 10 million checks, 0.7 s of CPU per block:
  ``bench/bench_chain_reads.py``);
- everything per supplier (claims, broadcasts, waiting for blocks) passes through.
"""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, TypeVar

from relayminer.chain.base import (
    Block,
    Chain,
    ChainEvent,
    Claim,
    Msg,
    OnChainSession,
    ServiceParams,
    TxResult,
)
from relayminer.protocol.proof_requirement import ProofParams
from relayminer.protocol.windows import SharedParams

__all__ = ["SUPPLIER_ATTRIBUTE", "SharedChainReads", "supplier_events"]

#: the event attribute naming the supplier a claim or proof event is about
SUPPLIER_ATTRIBUTE = "supplier_operator_address"

T = TypeVar("T")


class _Lru:
    """A bounded map of finished answers, plus the requests in flight (shared by callers)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.done: OrderedDict[Hashable, Any] = OrderedDict()
        self.pending: dict[Hashable, asyncio.Future[Any]] = {}

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        if key in self.done:
            self.done.move_to_end(key)
            return self.done[key]  # type: ignore[no-any-return]
        waiting = self.pending.get(key)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[key] = future
        try:
            value = await load()
        except BaseException as err:
            future.set_exception(err)
            future.exception()  # retrieved: a read nobody else awaited is not an error
            raise
        finally:
            self.pending.pop(key, None)
        future.set_result(value)
        self.put(key, value)
        return value

    def peek(self, key: Hashable) -> Any:
        return self.done.get(key)

    def put(self, key: Hashable, value: Any) -> None:
        self.done[key] = value
        while len(self.done) > self.size:
            self.done.popitem(last=False)

    def clear(self) -> None:
        self.done.clear()


class SharedChainReads:
    """A :class:`Chain` that asks the wrapped chain once for what every supplier asks."""

    def __init__(self, chain: Chain, *, max_entries: int = 4096, event_blocks: int = 64) -> None:
        self.inner = chain
        self._fixed = _Lru(max_entries)
        #: events of the newest blocks only: every supplier reads the same few recent heights,
        #: and a block's events can be large (memory stays flat over a long run)
        self._events = _Lru(event_blocks)
        self._event_index = _Lru(event_blocks)
        self._live = _Lru(16)
        self._txs = _Lru(max_entries)
        self._live_height = 0
        self._latest: Block | None = None
        self._waits: dict[tuple[int, float | None], asyncio.Future[Block]] = {}
        #: the ``latest_block`` request in flight, shared by every caller meanwhile
        self._latest_call: asyncio.Future[Block] | None = None

    def _seen(self, block: Block) -> Block:
        """A newer block makes the live answers stale."""
        if block.height > self._live_height:
            self._live_height = block.height
            self._latest = block
            self._live.clear()
        return block

    # --- blocks -----------------------------------------------------------------------------
    async def latest_block(self) -> Block:
        """The newest block, asked now (never cached: it is what a broadcast is measured from);
        the suppliers asking while a request is in flight share it."""
        call = self._latest_call
        if call is None:
            call = self._latest_call = asyncio.ensure_future(self.inner.latest_block())
            call.add_done_callback(self._latest_done)
        return self._seen(await asyncio.shield(call))

    def _latest_done(self, future: asyncio.Future[Block]) -> None:
        self._latest_call = None
        if not future.cancelled():
            future.exception()  # retrieved even when every caller has gone (stop)

    async def wait_for_block(self, min_height: int, timeout: float | None = None) -> Block:  # noqa: ASYNC109 - the Chain protocol's signature
        """The newest block seen when it is high enough; otherwise one shared wait per
        ``(min_height, timeout)`` for every supplier asking (never kept once answered)."""
        if self._latest is not None and self._latest.height >= min_height:
            return self._latest
        key = (min_height, timeout)
        waiting = self._waits.get(key)
        if waiting is None:
            waiting = asyncio.ensure_future(self.inner.wait_for_block(min_height, timeout))
            self._waits[key] = waiting
            waiting.add_done_callback(functools.partial(self._waited, key))
        return self._seen(await asyncio.shield(waiting))

    def _waited(self, key: tuple[int, float | None], future: asyncio.Future[Block]) -> None:
        self._waits.pop(key, None)
        if not future.cancelled():
            future.exception()  # retrieved even when every caller has gone (stop)

    async def block_hash(self, height: int) -> bytes:
        return await self._fixed.get(("hash", height), lambda: self.inner.block_hash(height))

    # --- params, services, sessions ---------------------------------------------------------
    async def shared_params(self, height: int | None = None) -> SharedParams:
        cache = self._live if height is None else self._fixed
        return await cache.get(("shared", height), lambda: self.inner.shared_params(height))

    async def proof_params(self) -> ProofParams:
        return await self._live.get(("proof",), self.inner.proof_params)

    async def service(self, service_id: str, height: int) -> ServiceParams:
        return await self._fixed.get(
            ("service", service_id, height), lambda: self.inner.service(service_id, height)
        )

    async def get_session(
        self, application_address: str, service_id: str, height: int
    ) -> OnChainSession:
        return await self._fixed.get(
            ("session", application_address, service_id, height),
            lambda: self.inner.get_session(application_address, service_id, height),
        )

    # --- per supplier -----------------------------------------------------------------------
    async def get_claim(self, supplier: str, session_id: str) -> Claim | None:
        return await self.inner.get_claim(supplier, session_id)

    async def claims(self, supplier: str) -> list[Claim]:
        return await self.inner.claims(supplier)

    async def broadcast(self, msgs: Sequence[Msg]) -> TxResult:
        return await self.inner.broadcast(msgs)

    async def tx_status(self, tx_hash: str) -> TxResult | None:
        """A result once in a block never changes; "in no block yet" is asked again."""
        hit = self._txs.peek(tx_hash)
        if hit is not None:
            return hit  # type: ignore[no-any-return]
        lookup = getattr(self.inner, "tx_status", None)  # a chain older than the method
        result = None if lookup is None else await lookup(tx_hash)
        if result is not None:
            self._txs.put(tx_hash, result)
        return result

    # --- events -----------------------------------------------------------------------------
    async def events(self, from_height: int, to_height: int) -> list[ChainEvent]:
        """Per committed block, asked once (only heights at or below the newest block seen are
        kept: a block not committed yet has no events *yet*)."""
        out: list[ChainEvent] = []
        for height in range(from_height, to_height + 1):
            if height > self._live_height:
                out.extend(await self.inner.events(height, height))
                continue
            load = functools.partial(self.inner.events, height, height)
            out.extend(await self._events.get(height, load))
        return out

    async def supplier_events(
        self, supplier: str, from_height: int, to_height: int
    ) -> list[ChainEvent]:
        """:meth:`events` naming ``supplier``: each committed block's events are indexed by
        supplier once, for every supplier of the replica (a block not committed yet is filtered
        on the spot, as :meth:`events` reads it afresh)."""
        out: list[ChainEvent] = []
        for height in range(from_height, to_height + 1):
            if height > self._live_height:
                out.extend(_of(supplier, await self.inner.events(height, height)))
                continue
            load = functools.partial(self._index_events, height)
            index: dict[str, list[ChainEvent]] = await self._event_index.get(height, load)
            out.extend(index.get(supplier, ()))
        return out

    async def _index_events(self, height: int) -> dict[str, list[ChainEvent]]:
        index: dict[str, list[ChainEvent]] = {}
        for event in await self.events(height, height):
            owner = event.attributes.get(SUPPLIER_ATTRIBUTE)
            if owner is not None:
                index.setdefault(owner, []).append(event)
        return index

    def __getattr__(self, name: str) -> Any:
        """Anything else (a chain's extras: ``close``, ``summary`` ...) is the wrapped one's."""
        return getattr(self.inner, name)


async def supplier_events(
    chain: Chain, supplier: str, from_height: int, to_height: int
) -> list[ChainEvent]:
    """The events of blocks ``from_height..to_height`` that name ``supplier``: from the
    per-block index of a :class:`SharedChainReads`, filtered here for any other chain."""
    if isinstance(chain, SharedChainReads):
        return await chain.supplier_events(supplier, from_height, to_height)
    return _of(supplier, await chain.events(from_height, to_height))


def _of(supplier: str, events: list[ChainEvent]) -> list[ChainEvent]:
    return [ev for ev in events if ev.attributes.get(SUPPLIER_ATTRIBUTE) == supplier]
