"""A small world for lifecycle tests: a simulated chain, relayers, workers and lifecycles.

Blocks are produced explicitly (``step``); after each block the workers drain their streams and
every lifecycle runs one pass. Timeline with :data:`PARAMS` (N=4, G=1, CO=1, CC=4, PO=0, PC=4):
session 1 = blocks 1..4, claim window 6..10, proof seed block 9, proof window 10..14,
settlement in block 14; session 2 = 5..8, claim 10..14, proof 14..18, settlement 18.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from relayminer.chain.base import Chain, ChainUnavailableError, Msg, SessionHeader, TxResult
from relayminer.chain.sim.chain import SimulatedChain
from relayminer.chain.sim.config import ServiceConfig, SimChainConfig
from relayminer.chain.sim.relay_builder import build_relay, jsonrpc_request, mined_relay_message
from relayminer.lifecycle.manager import LifecycleConfig, LifecycleManager, PassReport
from relayminer.pipeline.batch_result import BatchResult
from relayminer.pipeline.publisher import RelayPublisher
from relayminer.pipeline.worker import RelayWorker, WorkerConfig
from relayminer.protocol.proof_requirement import ProofParams
from relayminer.protocol.windows import SharedParams
from relayminer.sessions.model import SessionSnapshot
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig
from relayminer.smst.layout import DEFAULT_LAYOUT, SMSTLayout

PARAMS = SharedParams(
    num_blocks_per_session=4,
    grace_period_end_offset_blocks=1,
    claim_window_open_offset_blocks=1,
    claim_window_close_offset_blocks=4,
    proof_window_open_offset_blocks=0,
    proof_window_close_offset_blocks=4,
    compute_units_to_tokens_multiplier=1_000_000,
    compute_unit_cost_granularity=1_000_000,
)
APP, APP2 = "pokt1app", "pokt1app2"
SUP1, SUP2 = "pokt1sup1", "pokt1sup2"
SVC, SVC2 = "svc", "svc2"
CUPR = {SVC: 10, SVC2: 7}

ALWAYS = ProofParams(proof_requirement_threshold_upokt=0, proof_request_probability=0.0)
NEVER = ProofParams(proof_requirement_threshold_upokt=10**15, proof_request_probability=0.0)


def chain_config(
    proof_params: ProofParams = ALWAYS, drop_rate: float = 0.0, seed: int = 3
) -> SimChainConfig:
    return SimChainConfig(
        block_time_seconds=0.01,
        shared_params=PARAMS,
        proof_params=proof_params,
        services={s: ServiceConfig(compute_units_per_relay=c) for s, c in CUPR.items()},
        applications={APP: (SVC, SVC2), APP2: (SVC,)},
        suppliers={SUP1: (SVC, SVC2), SUP2: (SVC,)},
        drop_rate=drop_rate,
        seed=seed,
    )


@dataclass
class World:
    redis: Redis
    chain: SimulatedChain
    lifecycle_config: LifecycleConfig = field(default_factory=LifecycleConfig)
    layout: SMSTLayout = DEFAULT_LAYOUT
    suppliers: tuple[str, ...] = (SUP1, SUP2)
    workers: dict[str, RelayWorker] = field(default_factory=dict)
    managers: dict[str, LifecycleManager] = field(default_factory=dict)
    reports: list[PassReport] = field(default_factory=list)
    published: dict[tuple[str, str], int] = field(default_factory=dict)  # (supplier, sid) -> n
    #: passes as the run loop makes them (``LifecycleManager.tick``: quiet blocks), the workers
    #: telling the lifecycles of the sessions they create and mine (as ``Miner`` wires them)
    quiet_blocks: bool = False
    _nonce: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    async def create(
        cls,
        redis: Redis,
        config: SimChainConfig | None = None,
        lifecycle_config: LifecycleConfig | None = None,
        layout: SMSTLayout = DEFAULT_LAYOUT,
        *,
        quiet_blocks: bool = False,
    ) -> World:
        chain = SimulatedChain(redis, config or chain_config())
        await chain.init()
        world = cls(
            redis, chain, lifecycle_config or LifecycleConfig(), layout, quiet_blocks=quiet_blocks
        )
        for sup in world.suppliers:
            world.workers[sup] = world.new_worker(sup)
            world.restart_lifecycle(sup)
        return world

    def restart_lifecycle(self, supplier: str, chain: Chain | None = None) -> LifecycleManager:
        """A fresh manager (as after a process restart: nothing in memory)."""
        self.managers[supplier] = LifecycleManager(
            self.redis,
            supplier,
            chain or self.chain,
            config=self.lifecycle_config,
            smst_layout=self.layout,
        )
        return self.managers[supplier]

    def new_worker(self, supplier: str) -> RelayWorker:
        """A fresh relay worker of the world's layout (nothing cached)."""
        config = WorkerConfig(consumer_name="w", smst_layout=self.layout)
        if not self.quiet_blocks:
            return RelayWorker(self.redis, supplier, config)

        def created(_snapshot: SessionSnapshot) -> None:
            self.managers[supplier].sessions_created()

        def mined(result: BatchResult) -> None:
            self.managers[supplier].relays_mined(result.sessions)

        return RelayWorker(self.redis, supplier, config, on_session_created=created, on_batch=mined)

    async def height(self) -> int:
        return (await self.chain.latest_block()).height

    async def header(self, app: str, service: str, height: int | None = None) -> SessionHeader:
        h = height if height is not None else await self.height() + 1
        return (await self.chain.get_session(app, service, h)).header

    async def relays(
        self,
        supplier: str,
        n: int,
        *,
        app: str = APP,
        service: str = SVC,
        height: int | None = None,
        cu: int | None = None,
    ) -> str:
        """Publish ``n`` relays for the session of (app, service) at ``height`` (default: the
        next block); returns the session id."""
        header = await self.header(app, service, height)
        msgs = []
        for _ in range(n):
            nonce = next(self._nonce)
            relay = build_relay(header, supplier, jsonrpc_request(nonce), b'{"result":"0x1"}')
            msgs.append(
                mined_relay_message(
                    relay, header, supplier, cu if cu is not None else CUPR[service]
                )
            )
        await RelayPublisher(self.redis).publish_batch(msgs)
        key = (supplier, header.session_id)
        self.published[key] = self.published.get(key, 0) + n
        return header.session_id

    async def step(self, *, passes: bool = True, drain: bool = True) -> int:
        """Produce one block, mine every stream (unless ``drain`` is False: a worker behind),
        run one lifecycle pass per supplier."""
        block = await self.chain.produce_block()
        for worker in self.workers.values() if drain else ():
            await worker.drain()
        if passes:
            for manager in self.managers.values():
                if self.quiet_blocks:
                    report = await manager.tick(block.height)
                else:
                    report = await manager.pass_at(block.height)
                assert not report.errors, report.errors
                self.reports.append(report)
        return block.height

    async def run_to(self, height: int, *, passes: bool = True) -> None:
        while await self.height() < height:
            await self.step(passes=passes)

    async def session(self, supplier: str, session_id: str) -> SessionSnapshot:
        store = RedisSessionStore(self.redis, SessionStoreConfig(supplier))
        snap = await store.get(session_id)
        assert snap is not None, (supplier, session_id)
        return snap

    async def sessions(self, supplier: str) -> list[SessionSnapshot]:
        return await RedisSessionStore(self.redis, SessionStoreConfig(supplier)).get_by_supplier()

    async def close(self) -> None:
        await self.chain.close()


class FlakyChain:
    """Delegates to a chain, but rejects (or fails to reach) the next calls on demand:
    ``reject_next`` broadcasts get a CheckTx rejection; ``unavailable[name]`` calls of method
    ``name`` raise :class:`ChainUnavailableError` (``unavailable_next`` for broadcasts)."""

    def __init__(self, inner: SimulatedChain) -> None:
        self.inner = inner
        self.reject_next = 0
        self.unavailable_next = 0
        self.unavailable: dict[str, int] = {}
        self.broadcasts: list[list[str]] = []

    def __getattr__(self, name: str) -> object:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        async def call(*args: object, **kwargs: object) -> object:
            if self.unavailable.get(name, 0) > 0:
                self.unavailable[name] -= 1
                raise ChainUnavailableError(f"{name}: node unreachable (test)")
            return await target(*args, **kwargs)

        return call

    async def broadcast(self, msgs: Sequence[Msg]) -> TxResult:
        self.broadcasts.append([type(m).__name__ for m in msgs])
        if self.unavailable_next:
            self.unavailable_next -= 1
            raise ChainUnavailableError("node unreachable (test)")
        if self.reject_next:
            self.reject_next -= 1
            return TxResult(tx_hash="", code=20, log="mempool is full (test)", codespace="sdk")
        return await self.inner.broadcast(msgs)
