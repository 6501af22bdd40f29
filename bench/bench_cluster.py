"""Redis Cluster sharding: aggregate relays/s of 2 worker processes on 1 master vs 3 masters.

    .venv/bin/python bench/bench_cluster.py [--suppliers 8] [--relays 40000] [--batch 500]

Two local Redis Clusters are started for the run (no replicas: this measures sharding, not
replication), with the fixture of the cluster tests (``tests/cluster/cluster_support.py``): one
whose single master holds every slot, one whose three masters hold a third each. On each, the
same relays (~250 random bytes, spread over the suppliers, one session per supplier) are
published first; then 2 worker *processes* start together, each draining the streams of half
the suppliers with one ``RelayWorker`` per supplier (journal layout, one cluster client per
process). Aggregate throughput = relays / (last worker done - first worker started).

Both clusters stay up for the run and are measured alternately ``--repeats`` times (fresh relays
each time): the ratio of the median rates (3 masters / 1 master) is what sharding buys on this
machine. Every process (the two
workers and the masters) competes for the same cores, so on a 2-core machine the ratio
understates what separate hosts would give. Prints a markdown table and writes
``bench/results/cluster.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the cluster fixture of the tests

from redis.asyncio.cluster import RedisCluster  # noqa: E402
from tests.cluster.cluster_support import ClusterGroup, start_cluster  # noqa: E402

from bench_smst_memory import write_report  # noqa: E402
from relayminer.pipeline.publisher import RelayPublisher  # noqa: E402
from relayminer.pipeline.relays import MinedRelayMessage  # noqa: E402
from relayminer.pipeline.worker import RelayWorker, WorkerConfig  # noqa: E402
from relayminer.runtime.connections import connect  # noqa: E402
from relayminer.runtime.gcpolicy import run_gc_freezer  # noqa: E402

RESULTS = HERE / "results" / "cluster.json"
WORKERS = 2


def suppliers(n: int) -> list[str]:
    return [f"pokt1benchclu{i:02d}" for i in range(n)]


def relays(sups: list[str], count: int) -> list[MinedRelayMessage]:
    import hashlib
    import random

    rng = random.Random(7)
    out = []
    for i in range(count):
        body = rng.randbytes(250)
        sup = sups[i % len(sups)]
        out.append(
            MinedRelayMessage(
                relay_hash=hashlib.sha256(body).digest(),
                relay_bytes=body,
                compute_units_per_relay=10,
                session_id=f"bench-{sup}",
                session_start_height=1,
                session_end_height=10,
                supplier_operator_address=sup,
                service_id="svc",
                application_address="pokt1app",
            )
        )
    return out


# --- worker process -------------------------------------------------------------------------


async def drain(url: str, sups: list[str], batch: int, start_at: float) -> dict[str, Any]:
    redis = connect(url, max_connections=64)
    stop = asyncio.Event()
    gc_task = asyncio.create_task(run_gc_freezer(stop))
    try:
        workers = [
            RelayWorker(redis, s, WorkerConfig(consumer_name="bench", batch_size=batch))
            for s in sups
        ]
        await redis.ping()
        await asyncio.sleep(max(0.0, start_at - time.time()))  # both processes start together
        started = time.time()
        counts = await asyncio.gather(*(w.drain() for w in workers))
        done = time.time()
        counted = sum(w.total.counted for w in workers)
        return {"started": started, "done": done, "entries": sum(counts), "counted": counted}
    finally:
        stop.set()
        await gc_task
        await redis.aclose()


def worker_main(argv: list[str]) -> None:
    url, sups, batch, start_at = argv[0], argv[1].split(","), int(argv[2]), float(argv[3])
    print(json.dumps(asyncio.run(drain(url, sups, batch, start_at))), flush=True)


# --- the run -----------------------------------------------------------------------------------


def run_workers(url: str, sups: list[str], batch: int) -> list[dict[str, Any]]:
    """Start the worker processes together; their JSON results."""
    start_at = time.time() + 1.5  # time for every process to import and connect
    shards = [",".join(sups[i::WORKERS]) for i in range(WORKERS)]
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", url, shard, str(batch), str(start_at)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for shard in shards
    ]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"worker process failed ({p.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


async def measure_once(group: ClusterGroup, args: argparse.Namespace) -> dict[str, Any]:
    """One drain of freshly published relays by the worker processes."""
    sups = suppliers(args.suppliers)
    client = group.client()
    try:
        await client.flushall(target_nodes=RedisCluster.PRIMARIES)
        msgs = relays(sups, args.relays)
        pub = RelayPublisher(client)  # type: ignore[arg-type]
        for i in range(0, len(msgs), 1000):
            await pub.publish_batch(msgs[i : i + 1000])
        placement = sorted(
            sum(1 for s in sups if client.get_node_from_key(f"ha:relays:{s}").name == n.name)
            for n in client.get_primaries()
        )
    finally:
        await client.aclose()
    results = await asyncio.to_thread(run_workers, group.url, sups, args.batch)
    counted = sum(r["counted"] for r in results)
    if counted != args.relays:
        raise RuntimeError(f"counted {counted} of {args.relays} relays")
    wall = max(r["done"] for r in results) - min(r["started"] for r in results)
    return {
        "masters": len(group.masters),
        "suppliers_per_master": placement,
        "seconds": round(wall, 3),
        "relays_per_second": round(counted / wall),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Redis Cluster, {WORKERS} worker processes, {report['relays']} relays over "
        f"{report['suppliers']} suppliers (batch {report['batch']}), "
        f"{report['repeats']} alternating runs each:",
        "",
        "| masters | suppliers per master | relays/s per run | median relays/s |",
        "|---:|---|---|---:|",
    ]
    for masters in (1, 3):
        rows = [r for r in report["runs"] if r["masters"] == masters]
        per_run = ", ".join(str(r["relays_per_second"]) for r in rows)
        lines.append(
            f"| {masters} | {rows[0]['suppliers_per_master']} | {per_run} "
            f"| {report['median_relays_per_second'][str(masters)]} |"
        )
    lines.append("")
    lines.append(f"3 masters / 1 master (medians): **{report['ratio_3_to_1']}x**")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        worker_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--suppliers", type=int, default=8)
    parser.add_argument("--relays", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    async def run() -> list[dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
            groups = [
                await start_cluster(Path(tmp) / f"m{m}", masters=m, replicas_per_master=0)
                for m in (1, 3)
            ]
            try:
                for g in groups:
                    async with g.client() as c:
                        await c.initialize()
                runs = []
                for _ in range(args.repeats):  # alternating: both see the same machine load
                    for g in groups:
                        runs.append(await measure_once(g, args))
                return runs
            finally:
                for g in groups:
                    g.stop()

    runs = asyncio.run(run())
    medians = {
        str(m): round(statistics.median(r["relays_per_second"] for r in runs if r["masters"] == m))
        for m in (1, 3)
    }
    report = {
        "workers": WORKERS,
        "suppliers": args.suppliers,
        "relays": args.relays,
        "batch": args.batch,
        "repeats": args.repeats,
        "runs": runs,
        "median_relays_per_second": medians,
        "ratio_3_to_1": round(medians["3"] / medians["1"], 2),
    }
    print(markdown(report))
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
