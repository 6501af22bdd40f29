"""A load generator: Go-format relays for the sessions on chain, published like the relayer does.

:class:`LoadGenerator` plays the part of the Go relayers in the demo (and in tests): at the
chain's latest height ``H`` it looks up, for every (application, service) staked on the chain,
the session containing ``H``; every miner supplier in that session's supplier list receives
relays on its stream ``ha:relays:{supplier}``
(:class:`~relayminer.pipeline.publisher.RelayPublisher`).

Each relay is a real poktroll ``Relay`` (:func:`~relayminer.chain.sim.relay_builder.build_relay`)
carrying
the on-chain session header; the compute units are the service's compute units per relay. For a
service whose relay difficulty target is harder than the base one, only relays whose hash is
below the target are worth anything (they are the only ones a relayer publishes), so those are
mined (:func:`~relayminer.chain.sim.relay_builder.mine_relay`). Every relay is unique: its request
holds
the generator's relay counter.

Relays are published at ``relays_per_second`` in small batches (one every ``tick_seconds``),
only while the session is payable - arrival height ``<= session end + grace period - 1``, the
Go relayer's rule - and the generator stops after ``sessions`` session numbers (counting the
one current at its start), after ``duration_seconds``, or when ``stop`` is set, whichever comes
first. :attr:`LoadGenerator.stats` counts what was published, per supplier and per session.

Memory: a soak publishes to tens of thousands of sessions, and the generator runs in the demo's
process, whose RSS the soak reports. So a session's full record (:class:`SessionLoad`) lives only
while the session can still get relays; once its last payable height is behind, the record is
folded into :class:`ClosedSessions`: 8 bytes per (supplier, session), what the demo's end check
needs (was every session that got relays created, and did it settle).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from array import array
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from relayminer.chain.base import Chain, OnChainSession, ServiceParams
from relayminer.chain.sim.relay_builder import (
    BuiltRelay,
    MinedRelay,
    build_relay,
    mine_relay,
    mined_relay_message,
)
from relayminer.keys import KeyBuilder
from relayminer.pipeline.publisher import RelayPublisher
from relayminer.pipeline.relays import MinedRelayMessage
from relayminer.protocol.relay_difficulty import BASE_RELAY_DIFFICULTY_TARGET_HASH
from relayminer.protocol.windows import SharedParams, session_number
from relayminer.runtime.aio import wait_or_stop

__all__ = [
    "ClosedSessions",
    "LoadGenerator",
    "LoadStats",
    "SessionLoad",
    "Target",
    "relay_request",
]

#: service parameters remembered, per (service, session start height)
_SERVICES_KEPT = 256

#: ``on_batch(height, relays)`` after every published batch (the demo's progress, tests).
BatchHook = Callable[[int, int], Awaitable[None] | None]


def relay_request(counter: int, nonce: int | None = None) -> bytes:
    """The JSON-RPC request of relay number ``counter`` (``nonce``: the mining nonce).

    >>> relay_request(3)
    b'{"id":3,"jsonrpc":"2.0","method":"eth_blockNumber","params":[]}'
    >>> relay_request(3, 255)
    b'{"id":3,"jsonrpc":"2.0","method":"eth_blockNumber","params":["0xff"]}'
    """
    params = "" if nonce is None else f'"0x{nonce:x}"'
    return (
        f'{{"id":{counter},"jsonrpc":"2.0","method":"eth_blockNumber","params":[{params}]}}'
    ).encode()


def _response(counter: int) -> bytes:
    return f'{{"id":{counter},"jsonrpc":"2.0","result":"0x{counter:x}"}}'.encode()


@dataclass(frozen=True, slots=True)
class Target:
    """One supplier of one on-chain session: where a relay goes."""

    session: OnChainSession
    supplier: str
    service: ServiceParams

    @property
    def session_id(self) -> str:
        return str(self.session.header.session_id)

    @property
    def end_height(self) -> int:
        return int(self.session.header.session_end_block_height)


@dataclass(slots=True)
class SessionLoad:
    """What was published for one (supplier, session)."""

    supplier: str
    session_id: str
    application_address: str
    service_id: str
    session_start_height: int
    session_end_height: int
    compute_units_per_relay: int
    relays: int = 0

    @property
    def compute_units(self) -> int:
        return self.relays * self.compute_units_per_relay


def _session_digest(supplier: str, session_id: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(f"{supplier}/{session_id}".encode(), digest_size=8).digest(), "big"
    )


class ClosedSessions:
    """The (supplier, session id) pairs that got relays and can get no more: an 8-byte digest
    each (blake2b), so membership is exact up to a 2**-64 collision per pair.

    >>> closed = ClosedSessions()
    >>> closed.add("pokt1a", "s1")
    >>> ("pokt1a", "s1") in closed, ("pokt1a", "s2") in closed, len(closed)
    (True, False, 1)
    """

    def __init__(self) -> None:
        self._digests = array("Q")
        self._sorted: array[int] | None = None

    def add(self, supplier: str, session_id: str) -> None:
        self._digests.append(_session_digest(supplier, session_id))
        self._sorted = None

    def discard(self, supplier: str, session_id: str) -> None:
        """Forget the pair (a session published to again at a lower height: tests)."""
        digest = _session_digest(supplier, session_id)
        if digest in self._digests:
            self._digests.remove(digest)
            self._sorted = None

    def __len__(self) -> int:
        return len(self._digests)

    def __contains__(self, key: object) -> bool:
        if not (isinstance(key, tuple) and len(key) == 2):
            return False
        if self._sorted is None:
            self._sorted = array("Q", sorted(self._digests))
        digest = _session_digest(str(key[0]), str(key[1]))
        i = bisect_left(self._sorted, digest)
        return i < len(self._sorted) and self._sorted[i] == digest


@dataclass
class LoadStats:
    """Counters of a generator's run."""

    published: int = 0
    batches: int = 0
    per_supplier: dict[str, int] = field(default_factory=dict)
    #: the sessions that can still get relays, per (supplier, session id)
    sessions: dict[tuple[str, str], SessionLoad] = field(default_factory=dict)
    #: the sessions that got relays and can get no more (module docstring, "Memory")
    closed: ClosedSessions = field(default_factory=ClosedSessions)
    #: the highest session end height that got relays (0: none)
    last_session_end_height: int = 0
    first_height: int = 0
    last_height: int = 0
    started_at: float | None = None  # monotonic
    finished_at: float | None = None

    @property
    def elapsed_seconds(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.finished_at is not None else time.monotonic()
        return max(0.0, end - self.started_at)

    @property
    def relays_per_second(self) -> float:
        elapsed = self.elapsed_seconds
        return self.published / elapsed if elapsed > 0 else 0.0

    @property
    def session_count(self) -> int:
        """How many (supplier, session) pairs got relays, open or closed."""
        return len(self.sessions) + len(self.closed)

    def published_to(self, supplier: str, session_id: str) -> bool:
        """Whether the session got relays for ``supplier``."""
        key = (supplier, session_id)
        return key in self.sessions or key in self.closed

    def close_before(self, height: int, grace_blocks: int) -> None:
        """Fold the sessions whose last payable height (``end + grace - 1``) is below
        ``height`` into :attr:`closed`."""
        over = [
            key
            for key, load in self.sessions.items()
            if load.session_end_height + grace_blocks - 1 < height
        ]
        for key in over:
            del self.sessions[key]
            self.closed.add(*key)


class LoadGenerator:
    """Publishes relays for the sessions current at the chain's latest height (module doc)."""

    def __init__(
        self,
        redis: Redis,
        chain: Chain,
        suppliers: Sequence[str],
        *,
        applications: Mapping[str, Sequence[str]] | None = None,
        relays_per_second: float = 100.0,
        seed: int = 0,
        sessions: int | None = None,
        duration_seconds: float | None = None,
        tick_seconds: float = 0.1,
        keys: KeyBuilder | None = None,
        on_batch: BatchHook | None = None,
    ) -> None:
        if not suppliers:
            raise ValueError("at least one supplier is required")
        if relays_per_second <= 0:
            raise ValueError(f"relays_per_second must be > 0, got {relays_per_second}")
        if sessions is not None and sessions < 1:
            raise ValueError(f"sessions must be >= 1, got {sessions}")
        if duration_seconds is not None and duration_seconds <= 0:
            raise ValueError(f"duration_seconds must be > 0, got {duration_seconds}")
        if tick_seconds <= 0:
            raise ValueError(f"tick_seconds must be > 0, got {tick_seconds}")
        if applications is None:
            config = getattr(chain, "config", None)
            applications = getattr(config, "applications", None)
            if applications is None:
                raise ValueError("applications are required for a chain without a config")
        self.chain = chain
        self.suppliers = tuple(suppliers)
        self.applications = {app: tuple(svcs) for app, svcs in sorted(applications.items())}
        self.relays_per_second = float(relays_per_second)
        self.seed = seed
        self.sessions = sessions
        self.duration_seconds = duration_seconds
        self.tick_seconds = tick_seconds
        self.publisher = RelayPublisher(redis, keys)
        self.stats = LoadStats()
        self.done = asyncio.Event()
        self._on_batch = on_batch
        self._rng = random.Random(seed)
        self._counter = 0
        self._params: SharedParams | None = None
        self._targets: dict[int, list[Target]] = {}  # by height
        self._services: dict[tuple[str, int], ServiceParams] = {}
        self._first_session: int | None = None

    # --- sessions -------------------------------------------------------------------------------
    async def shared_params(self) -> SharedParams:
        if self._params is None:
            self._params = await self.chain.shared_params()
        return self._params

    async def _service(self, service_id: str, height: int) -> ServiceParams:
        key = (service_id, height)
        if key not in self._services:
            if len(self._services) >= _SERVICES_KEPT:
                self._services.clear()  # one entry per service and session start: bounded
            self._services[key] = await self.chain.service(service_id, height)
        return self._services[key]

    async def targets(self, height: int) -> list[Target]:
        """Every (session, miner supplier) pair current at ``height``, in a stable order."""
        cached = self._targets.get(height)
        if cached is not None:
            return cached
        found: list[Target] = []
        mine = set(self.suppliers)
        for app, services in self.applications.items():
            for service_id in services:
                session = await self.chain.get_session(app, service_id, height)
                start = int(session.header.session_start_block_height)
                service = await self._service(service_id, start)
                found += [
                    Target(session, supplier, service)
                    for supplier in session.suppliers
                    if supplier in mine
                ]
        self._targets = {height: found}  # only the latest height is ever asked again
        return found

    async def payable(self, target: Target, arrival_height: int) -> bool:
        """The Go relayer's rule: arrival height ``<= session end + grace - 1``."""
        params = await self.shared_params()
        return arrival_height <= target.end_height + params.grace_period_end_offset_blocks - 1

    # --- relays ---------------------------------------------------------------------------------
    def build(self, target: Target, arrival_height: int) -> MinedRelayMessage:
        """The next relay for ``target`` (mined when the service's target is not the base)."""
        self._counter += 1
        counter = self._counter
        header = target.session.header
        difficulty = target.service.relay_difficulty_target
        relay: BuiltRelay | MinedRelay
        if difficulty == BASE_RELAY_DIFFICULTY_TARGET_HASH:
            relay = build_relay(header, target.supplier, relay_request(counter), _response(counter))
        else:
            relay = mine_relay(
                header,
                target.supplier,
                lambda nonce: relay_request(counter, nonce),
                _response(counter),
                difficulty,
                seed=self._mining_seed(counter),
            )
        return mined_relay_message(
            relay,
            header,
            target.supplier,
            target.service.compute_units_per_relay,
            arrival_block_height=arrival_height,
        )

    def _mining_seed(self, counter: int) -> int:
        digest = hashlib.sha256(f"loadgen/{self.seed}/{counter}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    async def publish(self, count: int, height: int) -> list[MinedRelayMessage]:
        """Publish ``count`` relays at arrival ``height`` spread over the payable targets of
        that height (chosen with the seeded generator); returns what was published."""
        if height > self.stats.last_height:
            grace = (await self.shared_params()).grace_period_end_offset_blocks
            self.stats.close_before(height, grace)
        targets = [t for t in await self.targets(height) if await self.payable(t, height)]
        if not targets or count <= 0:
            return []
        msgs: list[MinedRelayMessage] = []
        chosen: list[Target] = []
        for _ in range(count):
            target = self._rng.choice(targets)
            msgs.append(self.build(target, height))
            chosen.append(target)
        await self.publisher.publish_batch(msgs)
        self._count(chosen, height)
        if self._on_batch is not None:
            outcome = self._on_batch(height, len(msgs))
            if outcome is not None:
                await outcome
        return msgs

    def _count(self, chosen: Sequence[Target], height: int) -> None:
        stats = self.stats
        stats.published += len(chosen)
        stats.batches += 1
        stats.first_height = stats.first_height or height
        stats.last_height = max(stats.last_height, height)
        for t in chosen:
            stats.per_supplier[t.supplier] = stats.per_supplier.get(t.supplier, 0) + 1
            key = (t.supplier, t.session_id)
            load = stats.sessions.get(key)
            if load is None:
                if height < stats.last_height and key in stats.closed:
                    stats.closed.discard(*key)  # published to again below a later height
                h = t.session.header
                load = SessionLoad(
                    supplier=t.supplier,
                    session_id=t.session_id,
                    application_address=str(h.application_address),
                    service_id=str(h.service_id),
                    session_start_height=int(h.session_start_block_height),
                    session_end_height=int(h.session_end_block_height),
                    compute_units_per_relay=t.service.compute_units_per_relay,
                )
                stats.sessions[key] = load
                stats.last_session_end_height = max(
                    stats.last_session_end_height, load.session_end_height
                )
            load.relays += 1

    # --- loop -----------------------------------------------------------------------------------
    async def finished_at(self, height: int) -> bool:
        """Whether the configured number of sessions is over at ``height``."""
        if self.sessions is None:
            return False
        number = session_number(await self.shared_params(), height)
        if self._first_session is None:
            self._first_session = number
        return number >= self._first_session + self.sessions

    async def run(self, stop: asyncio.Event | None = None) -> LoadStats:
        """Publish until the sessions or the duration are over, or ``stop`` is set."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.stats.started_at = time.monotonic()
        issued = 0  # relays due so far (published or skipped as not payable)
        burst = max(1, int(self.relays_per_second * max(self.tick_seconds, 0.5)))
        try:
            while not stop.is_set():
                tick_start = loop.time()
                height = (await self.chain.latest_block()).height
                if await self.finished_at(height):
                    break
                elapsed = tick_start - started
                if self.duration_seconds is not None and elapsed >= self.duration_seconds:
                    break
                due = int(self.relays_per_second * elapsed) - issued
                if due > 0:
                    count = min(due, burst)  # after a stall: no avalanche
                    issued += due
                    await self.publish(count, height)
                wait = self.tick_seconds - (loop.time() - tick_start)
                if wait > 0 and await wait_or_stop(stop, wait):
                    break
        finally:
            self.stats.finished_at = time.monotonic()
            self.done.set()
        return self.stats
