"""Relay pipeline throughput: published -> mined -> counted -> acked, on a local real server.

    .venv/bin/python bench/bench_worker.py [--relays 200000] [--sessions 2] [--batch 2000]

One supplier, one RelayWorker (this process), a local redis-server started for the run, the
sessions growing to ``relays / sessions`` relays each (100,000 by default). The worker runs with
the process GC policy of ``relayminer worker``/``run`` (:mod:`relayminer.runtime.gcpolicy`). Runs:

1. **baseline**: a bare XREADGROUP (COUNT batch) + XACK/XDEL drain of the same number of
   pre-published entries, through the same client stack (redis.asyncio + hiredis);
2. **drain**: the worker consuming the same pre-published stream (SMST, dedup, counters, ack);
3. **end to end**: a publisher *process* publishing as fast as it can while the worker runs;
   throughput = relays / (last ack - first publish), and publish-to-ack latency per relay.
4. **paced**: the publisher paced at half the end-to-end rate: latency without a backlog.

Prints a markdown table and writes ``bench/results/worker.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

from redis.asyncio import Redis

from bench_smst_memory import write_report
from relayminer.pipeline.worker import BatchResult, RelayWorker, WorkerConfig
from relayminer.runtime.connections import connect
from relayminer.runtime.embedded import find_server_binary, start_server
from relayminer.runtime.gcpolicy import run_gc_freezer

SUPPLIER = "pokt1bench"
STREAM = f"ha:relays:{SUPPLIER}"
HERE = Path(__file__).resolve().parent


def publish(url: str, n: int, sessions: int, rate: float = 0.0) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        str(HERE / "relay_publisher.py"),
        url,
        SUPPLIER,
        str(n),
        str(sessions),
        str(rate),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def publish_all(url: str, n: int, sessions: int) -> None:
    proc = publish(url, n, sessions)
    proc.communicate()
    assert proc.returncode == 0


async def baseline_drain(redis: Redis, url: str, n: int, sessions: int, batch: int) -> float:
    await redis.flushall()
    publish_all(url, n, sessions)
    await redis.xgroup_create(STREAM, "ha-miners", id="0", mkstream=True)
    t0 = time.perf_counter()
    done = 0
    while True:
        reply = await redis.xreadgroup("ha-miners", "bare", {STREAM: ">"}, count=batch)
        if not reply:
            break
        ids = [entry_id for entry_id, _ in reply[0][1]]
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xack(STREAM, "ha-miners", *ids)
            pipe.xdel(STREAM, *ids)
            await pipe.execute()
        done += len(ids)
    elapsed = time.perf_counter() - t0
    assert done == n, (done, n)
    return n / elapsed


async def worker_drain(redis: Redis, url: str, n: int, sessions: int, batch: int) -> float:
    await redis.flushall()
    publish_all(url, n, sessions)
    worker = RelayWorker(redis, SUPPLIER, WorkerConfig(batch_size=batch, consumer_name="w"))
    stop = asyncio.Event()
    freezer = asyncio.create_task(run_gc_freezer(stop))  # as `relayminer worker` / `run` do
    t0 = time.perf_counter()
    handled = await worker.drain()
    elapsed = time.perf_counter() - t0
    stop.set()
    await freezer
    assert handled == n and worker.total.counted == n, (handled, worker.total)
    return n / elapsed


async def end_to_end(
    redis: Redis, url: str, n: int, sessions: int, batch: int, rate: float = 0.0
) -> dict[str, float]:
    await redis.flushall()
    latencies: list[int] = []
    acks: list[int] = []
    counted = 0
    stop = asyncio.Event()

    def on_batch(result: BatchResult) -> None:
        nonlocal counted
        now = time.time_ns()
        latencies.extend(now - p for p in result.published_ns if p)
        acks.append(now)
        counted += result.counted
        if counted >= n:
            stop.set()

    worker = RelayWorker(
        redis,
        SUPPLIER,
        WorkerConfig(batch_size=batch, block_ms=50, consumer_name="w"),
        on_batch=on_batch,
    )
    await worker.consumer.ensure_group()
    proc = publish(url, n, sessions, rate)
    await asyncio.gather(worker.run(stop), run_gc_freezer(stop))
    out, _ = proc.communicate()
    first_publish_ns = int(out.split()[0])
    elapsed = (acks[-1] - first_publish_ns) / 1e9
    latencies.sort()
    return {
        "relays": n,
        "throughput_per_s": n / elapsed,
        "latency_p50_ms": latencies[len(latencies) // 2] / 1e6,
        "latency_p99_ms": latencies[int(len(latencies) * 0.99)] / 1e6,
        "latency_mean_ms": statistics.fmean(latencies) / 1e6,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--relays", type=int, default=200_000)
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    n, sessions, batch = args.relays, args.sessions, args.batch
    server = start_server(find_server_binary())
    redis = connect(server.url)
    try:
        base = await baseline_drain(redis, server.url, n, sessions, batch)
        drain = await worker_drain(redis, server.url, n, sessions, batch)
        e2e = await end_to_end(redis, server.url, n, sessions, batch)
        paced = await end_to_end(
            redis, server.url, n // 2, sessions, batch, rate=e2e["throughput_per_s"] / 2
        )
    finally:
        await redis.aclose()
        server.stop()
    results = {
        "relays": n,
        "sessions": sessions,
        "relays_per_session": n // sessions,
        "batch": batch,
        "server": server.binary,
        "baseline_bare_drain_per_s": base,
        "worker_drain_per_s": drain,
        "worker_drain_vs_baseline": drain / base,
        "end_to_end": e2e,
        "end_to_end_vs_baseline": e2e["throughput_per_s"] / base,
        "paced_half_rate": paced,
    }
    write_report(HERE / "results" / "worker.json", results)
    print(
        f"| run ({n:,} relays, {sessions} sessions of {n // sessions:,}) | relays/s | "
        "vs bare drain | p50 ms | p99 ms |"
    )
    print("|---|---|---|---|---|")
    print(f"| bare XREADGROUP + XACK/XDEL drain (baseline) | {base:,.0f} | 1.00 | | |")
    print(f"| worker drain of a pre-published stream | {drain:,.0f} | {drain / base:.2f} | | |")
    print(
        f"| end to end, publisher at full speed | {e2e['throughput_per_s']:,.0f} | "
        f"{e2e['throughput_per_s'] / base:.2f} | {e2e['latency_p50_ms']:.0f} | "
        f"{e2e['latency_p99_ms']:.0f} |"
    )
    print(
        f"| end to end, publisher paced at half that | {paced['throughput_per_s']:,.0f} | "
        f"{paced['throughput_per_s'] / base:.2f} | {paced['latency_p50_ms']:.1f} | "
        f"{paced['latency_p99_ms']:.1f} |"
    )


if __name__ == "__main__":
    asyncio.run(main())
