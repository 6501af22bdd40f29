"""``relayminer demo``: the whole system on one machine, from relays to settled rewards.

:func:`run_demo` builds a small world (:func:`demo_config`): a simulated chain with 4
applications and 2 services - ``anvil`` (10 compute units per relay, base difficulty) and
``llm`` (7 compute units per relay, a 4x harder relay difficulty target) - and by default 3
suppliers. It opens the chain, runs one in-process :class:`~relayminer.runtime.miner.Miner` replica
that owns every supplier and produces the blocks, and a
:class:`~relayminer.chain.sim.loadgen.LoadGenerator` publishing Go-format relays for ``sessions``
sessions. It then waits until every session that received relays is terminal and the chain
has settled it (the height passed its settlement height and the miner recorded the outcome),
stops everything and returns a :class:`DemoSummary`.

The proof parameters make both outcomes of a claim happen: the threshold is out of reach, so
whether a claim needs a proof is the chain's lottery (probability 0.5 by default, decided by
the claim and the proof-seed block hash): a required proof is built and sent (``proved``), an
unrequired one is not (``probabilistic_proved``).

``DemoOptions.chain == "localnet"`` (``relayminer demo --chain localnet``) serves the same
chain through an in-process localnet and gives the miner the real Pocket client
(:mod:`relayminer.demo.localnet`): relays -> miner -> chain client -> node over loopback. The
suppliers and applications are then real ``pokt1`` addresses, and ``rewards_upokt`` is each
supplier's balance change, net of the tx fees it paid.

``relays_mined`` is read back from Redis (the sum of the sessions' ``relay_count``), never
taken from the generator: the demo succeeds when it equals ``relays_published``, every
session ended ``proved`` or ``probabilistic_proved`` and the chain settled (paid) every one of
those claims. The last condition matters: the miner marks a session ``proved`` once the
mempool accepted its proof, so a proof the mempool silently dropped (``--drop-rate``) shows up
only as an expired claim at settlement.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from redis.asyncio import Redis

from relayminer.chain.base import Chain
from relayminer.chain.factory import Driver
from relayminer.chain.settings import SimulatedChainSettings
from relayminer.chain.sim.chain import SimulatedChain
from relayminer.chain.sim.loadgen import LoadGenerator, LoadStats
from relayminer.chain.sim.setup import open_simulated_chain
from relayminer.chain.sim.state import SimChainKeys
from relayminer.config import MinerConfig, parse_config
from relayminer.demo.summary import DemoProgress, DemoSummary, MemorySampler, SubmitDelays
from relayminer.errors import RelayMinerError
from relayminer.keys import KeyBuilder
from relayminer.lifecycle.manager import PassReport
from relayminer.lifecycle.rules import Windows
from relayminer.pipeline.worker import BatchResult
from relayminer.protocol.windows import SharedParams
from relayminer.runtime.miner import Miner, MinerHooks
from relayminer.sessions.model import SessionSnapshot, SessionState
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig

if TYPE_CHECKING:
    from relayminer.chain.pocket.keys import PocketKey
    from relayminer.chain.sim.node.genesis import LocalnetConfig

__all__ = [
    "DEMO_APPLICATIONS",
    "DEMO_SERVICES",
    "DemoError",
    "DemoOptions",
    "DemoProgress",
    "DemoSummary",
    "ProgressSink",
    "demo_config",
    "run_demo",
    "supplier_addresses",
]

log = logging.getLogger(__name__)

#: service id -> (compute units per relay, relay difficulty target hex)
DEMO_SERVICES: Final = {
    "anvil": (10, "ff" * 32),
    "llm": (7, "3f" + "ff" * 31),
}
#: application -> the services it is staked for
DEMO_APPLICATIONS: Final = {
    "pokt1demoapp1": ["anvil", "llm"],
    "pokt1demoapp2": ["anvil"],
    "pokt1demoapp3": ["llm"],
    "pokt1demoapp4": ["anvil", "llm"],
}
_SUCCESS: Final = (SessionState.PROVED, SessionState.PROBABILISTIC_PROVED)
_SETTLED: Final = "settled_proven"  # the settlement outcome of a claim paid out


class DemoError(RelayMinerError):
    """The demo cannot run (e.g. the Redis database already holds a simulated chain)."""


@dataclass(frozen=True)
class DemoOptions:
    """Scale and knobs of a demo run (the CLI flags)."""

    suppliers: int = 3
    relays_per_second: float = 200.0
    sessions: int = 3
    block_time_seconds: float = 1.0
    drop_rate: float = 0.0
    seed: int = 1
    namespace: str = "ha"
    #: the lottery of the proof requirement (the threshold is out of reach)
    proof_request_probability: float = 0.5
    #: blocks past the last settlement height the demo waits for stragglers before giving up
    settle_grace_blocks: int = 4
    #: how often the progress is refreshed when nothing happens (seconds)
    refresh_seconds: float = 0.5
    #: "simulated": the miner drives the simulated chain in process; "localnet": the miner
    #: talks to a localnet over loopback through the Pocket chain client
    chain: Literal["simulated", "localnet"] = "simulated"

    def __post_init__(self) -> None:
        if self.suppliers < 1:
            raise ValueError("suppliers must be >= 1")
        if self.sessions < 1:
            raise ValueError("sessions must be >= 1")
        if self.relays_per_second <= 0:
            raise ValueError("relays_per_second must be > 0")
        if self.block_time_seconds <= 0:
            raise ValueError("block_time_seconds must be > 0")
        if not 0 <= self.drop_rate < 1:
            raise ValueError("drop_rate must be within [0, 1)")
        if self.settle_grace_blocks < 0:
            raise ValueError("settle_grace_blocks must be >= 0")
        if self.chain not in ("simulated", "localnet"):
            raise ValueError("chain must be 'simulated' or 'localnet'")


def supplier_addresses(n: int) -> list[str]:
    """The demo's supplier operator addresses.

    >>> supplier_addresses(2)
    ['pokt1demosupplier01', 'pokt1demosupplier02']
    """
    return [f"pokt1demosupplier{i:02d}" for i in range(1, n + 1)]


def demo_config(options: DemoOptions, redis_url: str | None = None) -> MinerConfig:
    """The miner configuration of the demo world (shared params N=4, G=1, CO=1, CC=4, PO=0,
    PC=4; both services; every supplier staked for both)."""
    block_ms = int(min(250.0, max(10.0, options.block_time_seconds * 1000 / 4)))
    return parse_config(
        {
            "suppliers": supplier_addresses(options.suppliers),
            "instance_id": "relayminer-demo",
            "redis": {"url": redis_url, "namespace": {"base_prefix": options.namespace}},
            "worker": {"block_ms": block_ms, "claim_idle_ms": 5000},
            "metrics": {"enabled": False},
            "chain": {
                "produce_blocks": True,
                "block_time_seconds": options.block_time_seconds,
                "shared_params": {
                    "num_blocks_per_session": 4,
                    "grace_period_end_offset_blocks": 1,
                    "claim_window_open_offset_blocks": 1,
                    "claim_window_close_offset_blocks": 4,
                    "proof_window_open_offset_blocks": 0,
                    "proof_window_close_offset_blocks": 4,
                },
                "proof_params": {
                    "proof_request_probability": options.proof_request_probability,
                    "proof_requirement_threshold_upokt": 10**15,
                },
                "services": {
                    sid: {"compute_units_per_relay": cupr, "relay_difficulty_target_hex": target}
                    for sid, (cupr, target) in DEMO_SERVICES.items()
                },
                "applications": DEMO_APPLICATIONS,
                "drop_rate": options.drop_rate,
                "seed": options.seed,
            },
        }
    )


ProgressSink = Callable[[DemoProgress], None]


# --- the run --------------------------------------------------------------------------------------


@dataclass
class _Live:
    """Counters fed by the miner's hooks."""

    mined: int = 0
    claims: int = 0
    proofs: int = 0
    failed_at_execution: int = 0
    delays: SubmitDelays = field(default_factory=SubmitDelays)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def on_batch(self, _supplier: str, result: BatchResult) -> None:
        self.mined += result.counted

    def on_pass(self, _supplier: str, report: PassReport) -> None:
        self.claims += len(report.claimed)
        self.proofs += len(report.proved)
        self.failed_at_execution += len(report.failed_at_execution)
        for phase, blocks in report.delays:
            self.delays.add(phase, blocks)
        self.wake.set()


class _Demo:
    def __init__(
        self,
        redis: Redis,
        options: DemoOptions,
        on_progress: ProgressSink | None,
        stop: asyncio.Event,
    ) -> None:
        self.redis = redis
        self.options = options
        self.config = demo_config(options)
        self.supplier_keys: list[PocketKey] = []
        self.localnet: LocalnetConfig | None = None
        #: genesis balances of the suppliers (the localnet funds them for fees)
        self.funding: dict[str, int] = {}
        if options.chain == "localnet":
            self._localnet_world()
        self.keys = KeyBuilder(self.config.redis.namespace)
        self.suppliers = list(self.config.suppliers)
        self.on_progress = on_progress
        self.stop = stop
        self.live = _Live()
        self.stores = {
            s: RedisSessionStore(
                redis,
                SessionStoreConfig(
                    s, self.keys.miner_sessions_prefix(), self.config.session_ttl_seconds
                ),
            )
            for s in self.suppliers
        }
        self.problems: list[str] = []
        self.started = time.monotonic()
        self.resources = MemorySampler()
        #: the session snapshots, re-read at most every ``_read_every`` seconds: with many
        #: suppliers a read is thousands of round trips, and the demo must not starve the miner
        self._snapshots: dict[tuple[str, str], SessionSnapshot] = {}
        self._read_at = -math.inf
        self._read_every = options.refresh_seconds

    def _localnet_world(self) -> None:
        """Real addresses: suppliers from deterministic test keys, applications derived."""
        from relayminer.demo.localnet import (
            demo_application_addresses,
            demo_supplier_keys,
            localnet_config,
        )

        self.supplier_keys = demo_supplier_keys(self.options.suppliers)
        suppliers = [k.address() for k in self.supplier_keys]
        applications = demo_application_addresses(DEMO_APPLICATIONS)
        self.localnet = localnet_config(
            self.config.chain.model_dump(mode="json"), suppliers, applications
        )
        self.config = self.config.model_copy(update={"suppliers": suppliers})

    async def snapshots(self) -> dict[tuple[str, str], SessionSnapshot]:
        out: dict[tuple[str, str], SessionSnapshot] = {}
        for supplier, store in self.stores.items():
            for s in await store.get_by_supplier():
                out[(supplier, s.session_id)] = s
        return out

    async def run(self) -> DemoSummary:
        if await self.redis.exists(SimChainKeys(self.keys).config):
            raise DemoError(
                f"this Redis database already holds a simulated chain under namespace "
                f"{self.keys.ns.base_prefix!r}: use another --namespace or an empty database"
            )
        if self.options.chain == "localnet":
            return await self._run_on_localnet()
        settings = self.config.chain
        assert isinstance(settings, SimulatedChainSettings)
        chain = await open_simulated_chain(
            settings, self.redis, keys=self.keys, suppliers=self.config.suppliers
        )
        try:
            return await self._run(chain, chain, chain.run if settings.produce_blocks else None)
        finally:
            await chain.close()

    async def _run_on_localnet(self) -> DemoSummary:
        from relayminer.demo.localnet import open_localnet_world

        assert self.localnet is not None
        async with open_localnet_world(
            self.redis, self.localnet, self.supplier_keys, self.keys
        ) as world:
            self.config = self.config.model_copy(update={"chain": world.settings})
            self.funding = {s: await world.sim.balance(s) for s in self.suppliers}
            return await self._run(world.sim, world.connection.chain, world.connection.driver)

    async def _run(
        self, chain: SimulatedChain, miner_chain: Chain, driver: Driver | None
    ) -> DemoSummary:
        """``chain`` is the simulated chain (the load and the summary read it); the miner talks
        to ``miner_chain`` (the same object, or the Pocket client of a localnet)."""
        start_height = (await chain.latest_block()).height
        params = await chain.shared_params()
        miner = Miner(
            self.config,
            self.redis,
            miner_chain,
            driver=driver,
            hooks=MinerHooks(on_batch=self.live.on_batch, on_pass=self.live.on_pass),
        )
        loadgen = LoadGenerator(
            self.redis,
            chain,
            self.suppliers,
            relays_per_second=self.options.relays_per_second,
            seed=self.options.seed,
            sessions=self.options.sessions,
            keys=self.keys,
        )
        miner_stop, load_stop = asyncio.Event(), asyncio.Event()
        miner_task = asyncio.create_task(miner.run(miner_stop), name="demo-miner")
        load_task = asyncio.create_task(loadgen.run(load_stop), name="demo-loadgen")
        try:
            await self._watch(chain, loadgen, params, miner_task, load_task)
        finally:
            load_stop.set()
            miner_stop.set()
            results = await asyncio.gather(load_task, miner_task, return_exceptions=True)
        for name, result in zip(("load generator", "miner"), results, strict=True):
            if isinstance(result, BaseException):
                self.problems.append(f"the {name} failed: {result!r}")
        return await self._summary(chain, loadgen, start_height)

    async def _watch(
        self,
        chain: SimulatedChain,
        loadgen: LoadGenerator,
        params: SharedParams,
        miner_task: asyncio.Task[None],
        load_task: asyncio.Task[Any],
    ) -> None:
        """Refresh the progress until the sessions are settled, the run is interrupted, a
        component died, or the settlement deadline passed."""
        while True:
            if self.stop.is_set():
                self.problems.append("interrupted")
                return
            if miner_task.done():
                self.problems.append("the miner stopped before the sessions were settled")
                return
            height = (await chain.latest_block()).height
            self.resources.sample()
            settle_height: int | None = None
            if load_task.done():
                if loadgen.stats.session_count == 0:
                    return  # nothing was published: nothing to wait for
                last_end = loadgen.stats.last_session_end_height
                settle_height = Windows.for_session(params, last_end).settlement_height
            # The snapshots feed the live display, and the end check once the last session can
            # be settled; nothing else reads them: a read is every session ever seen, thousands
            # of round trips, and one while the last claims fall due would starve them.
            wanted = self.on_progress is not None or (
                settle_height is not None and height >= settle_height
            )
            snapshots = await self._recent_snapshots() if wanted else {}
            if settle_height is not None:
                if self._settled(loadgen.stats, snapshots, height, settle_height):
                    await self._report(chain, loadgen, snapshots, height, "done", settle_height)
                    return
                if height >= settle_height + self.options.settle_grace_blocks:
                    self.problems.append(
                        f"gave up waiting at height {height}: the last session settles at "
                        f"{settle_height}"
                    )
                    return
            phase = "load" if not load_task.done() else "settling"
            await self._report(chain, loadgen, snapshots, height, phase, settle_height)
            self.live.wake.clear()
            await self._pause(load_task, miner_task)

    async def _pause(self, load_task: asyncio.Task[Any], miner_task: asyncio.Task[None]) -> None:
        """Wait until something worth a refresh happens, at most ``refresh_seconds``.

        Only *pending* tasks are waited on: a finished one would end ``asyncio.wait`` at once,
        every time, and turn the watch loop into a busy spin (a whole core once loading ends).
        """
        waiters: set[asyncio.Future[Any]] = {
            asyncio.ensure_future(self.live.wake.wait()),
            asyncio.ensure_future(self.stop.wait()),
        }
        own = set(waiters)
        waiters |= {t for t in (load_task, miner_task) if not t.done()}
        try:
            await asyncio.wait(
                waiters, timeout=self.options.refresh_seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for w in own:
                if not w.done():
                    w.cancel()

    async def _recent_snapshots(self) -> dict[tuple[str, str], SessionSnapshot]:
        """The snapshots, re-read once the last read is ``_read_every`` old; a read that took
        ``t`` seconds waits ``4 t`` before the next (at most a fifth of the time reading)."""
        now = time.monotonic()
        if now - self._read_at >= self._read_every:
            self._snapshots = await self.snapshots()
            took = time.monotonic() - now
            self._read_at = time.monotonic()
            self._read_every = max(self.options.refresh_seconds, 4 * took)
        return self._snapshots

    @staticmethod
    def _settled(
        published: LoadStats,
        snapshots: dict[tuple[str, str], SessionSnapshot],
        height: int,
        settle_height: int,
    ) -> bool:
        """Whether every session that got relays has a snapshot in a terminal state, settled
        on chain when it ended proved or probabilistic_proved."""
        if height < settle_height:
            return False
        done = 0
        for key, s in snapshots.items():
            if not published.published_to(*key):
                continue
            if not s.state.is_terminal:
                return False
            if s.state in _SUCCESS and s.settlement_outcome is None:
                return False
            done += 1
        return done == published.session_count

    async def _report(
        self,
        chain: SimulatedChain,
        loadgen: LoadGenerator,
        snapshots: dict[tuple[str, str], SessionSnapshot],
        height: int,
        phase: str,
        settle_height: int | None,
    ) -> None:
        if self.on_progress is None:
            return
        elapsed = time.monotonic() - self.started
        load_elapsed = loadgen.stats.elapsed_seconds
        summary = await chain.summary()
        self.on_progress(
            DemoProgress(
                phase=phase,
                height=height,
                relays_published=loadgen.stats.published,
                relays_mined=self.live.mined,
                published_per_second=loadgen.stats.relays_per_second,
                mined_per_second=self.live.mined / load_elapsed if load_elapsed > 0 else 0.0,
                sessions_by_state=dict(Counter(s.state.value for s in snapshots.values())),
                claims_submitted=self.live.claims,
                proofs_submitted=summary.proofs_submitted,
                claims_settled=summary.claims_settled,
                elapsed_seconds=elapsed,
                settle_height=settle_height,
            )
        )

    async def _summary(
        self, chain: SimulatedChain, loadgen: LoadGenerator, start_height: int
    ) -> DemoSummary:
        snapshots = await self.snapshots()
        states = Counter(s.state for s in snapshots.values())
        stats = loadgen.stats
        mined = sum(s.relay_count for s in snapshots.values())
        chain_summary = await chain.summary()
        rewards = {s: await chain.balance(s) - self.funding.get(s, 0) for s in self.suppliers}
        problems = list(self.problems)
        if stats.published == 0:
            problems.append("no relay was published")
        if mined != stats.published:
            problems.append(
                f"relays_mined ({mined}) != relays_published ({stats.published}): "
                "some relays were not counted"
            )
        created = sum(1 for key in snapshots if stats.published_to(*key))
        if created < stats.session_count:
            problems.append(
                f"{stats.session_count - created} sessions with published relays were never created"
            )
        unsuccessful = {
            state.value: n for state, n in sorted(states.items()) if state not in _SUCCESS
        }
        if unsuccessful:
            problems.append(
                f"{sum(unsuccessful.values())} sessions did not end proved or "
                f"probabilistic_proved: {unsuccessful}"
            )
        outcomes = Counter(
            s.settlement_outcome or "none" for s in snapshots.values() if s.state in _SUCCESS
        )
        unsettled = {o: n for o, n in sorted(outcomes.items()) if o != _SETTLED}
        if unsettled:
            problems.append(
                f"{sum(unsettled.values())} sessions ended proved or probabilistic_proved but "
                f"their claims were not settled on chain: {unsettled}"
            )
        duration = time.monotonic() - self.started
        return DemoSummary(
            relays_published=stats.published,
            relays_mined=mined,
            sessions=len(snapshots),
            sessions_proved=states[SessionState.PROVED],
            sessions_probabilistic_proved=states[SessionState.PROBABILISTIC_PROVED],
            sessions_failed=sum(n for state, n in states.items() if state.is_failure),
            sessions_by_state={state.value: n for state, n in sorted(states.items())},
            sessions_settled=sum(1 for s in snapshots.values() if s.settlement_outcome == _SETTLED),
            claims_submitted=sum(1 for s in snapshots.values() if s.claim_tx_hash),
            proofs_submitted=chain_summary.proofs_submitted,
            claims_settled=chain_summary.claims_settled,
            claims_expired=chain_summary.claims_expired,
            rewards_upokt=rewards,
            rewards_total_upokt=sum(rewards.values()),
            suppliers=list(self.suppliers),
            published_per_supplier=dict(sorted(stats.per_supplier.items())),
            start_height=start_height,
            end_height=chain_summary.height,
            duration_seconds=duration,
            load_seconds=stats.elapsed_seconds,
            relays_per_second=stats.relays_per_second,
            chain=chain_summary.as_dict(),
            submit_delay_blocks=self.live.delays.as_dict(),
            txs_failed_at_execution=chain_summary.txs_failed,
            cpu_seconds=self.resources.cpu_seconds(),
            rss_mb=self.resources.rss(),
            problems=problems,
        )


async def run_demo(
    redis: Redis,
    options: DemoOptions | None = None,
    *,
    on_progress: ProgressSink | None = None,
    stop: asyncio.Event | None = None,
) -> DemoSummary:
    """Run the demo on ``redis`` (module docstring); ``stop`` interrupts it (the summary then
    says so in ``problems``). Raises :class:`DemoError` when the namespace already holds a
    simulated chain."""
    demo = _Demo(redis, options or DemoOptions(), on_progress, stop or asyncio.Event())
    return await demo.run()
