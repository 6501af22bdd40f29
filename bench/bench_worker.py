"""Relay pipeline throughput: published -> mined -> counted -> acked, on a local real server.

    .venv/bin/python bench/bench_worker.py [--relays 100000] [--sessions 1,100,1000]
        [--layouts journal,go] [--batch 2000] [--repeat 3] [--e2e]

One supplier, one RelayWorker (this process), a local redis-server started for the run, relays
of 250 random bytes published round-robin over the sessions. The worker runs with the process
GC policy of ``relayminer worker``/``run`` (:mod:`relayminer.runtime.gcpolicy`). For each
session count, ``--repeat`` times (the machine is shared: the report gives the median ratio and
its spread, min..max, each ratio against the baseline measured just before it):

1. **baseline**: a bare XREADGROUP (COUNT batch) + XACK/XDEL drain of the same number of
   pre-published entries, through the same client stack (redis.asyncio + hiredis);
2. **worker**, per ``smst.layout``: ``RelayWorker.run`` -- the loop ``relayminer worker`` runs,
   which reads the next batch and stages it while the previous batch's accounting step runs --
   consuming an identical pre-published stream until every relay is counted (journal: leaves +
   counters + ack in one script; go: SMST commits, dedup set, counters, ack);
3. **drain**: ``RelayWorker.drain`` (one batch after the other, nothing overlapped) on the same
   stream again, and the Redis ``used_memory`` growth per relay once the stream is drained
   (server flushed before each run, the empty stream's own memory subtracted).

With ``--e2e`` (first session count, first layout): **end to end**, a publisher *process*
publishing as fast as it can while the worker runs (throughput = relays / (last ack - first
publish), publish-to-ack latency per relay), then **paced** at half that rate.

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
from relayminer.smst.layout import SMSTLayout

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


async def used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def worker_drain(
    redis: Redis, url: str, n: int, sessions: int, batch: int, layout: SMSTLayout
) -> tuple[float, float]:
    """Relays/s of the worker's drain, and Redis memory growth per relay after it."""
    await redis.flushall()
    await redis.xgroup_create(STREAM, "ha-miners", id="0", mkstream=True)
    empty = await used_memory(redis)
    await redis.delete(STREAM)
    publish_all(url, n, sessions)
    config = WorkerConfig(batch_size=batch, consumer_name="w", smst_layout=layout)
    worker = RelayWorker(redis, SUPPLIER, config)
    stop = asyncio.Event()
    freezer = asyncio.create_task(run_gc_freezer(stop))  # as `relayminer worker` / `run` do
    t0 = time.perf_counter()
    handled = await worker.drain()
    elapsed = time.perf_counter() - t0
    stop.set()
    await freezer
    assert handled == n and worker.total.counted == n, (handled, worker.total)
    assert await redis.xlen(STREAM) == 0
    per_relay = (await used_memory(redis) - empty) / n
    return n / elapsed, per_relay


async def worker_run(
    redis: Redis, url: str, n: int, sessions: int, batch: int, layout: SMSTLayout
) -> float:
    """Relays/s of ``RelayWorker.run`` (as ``relayminer worker`` runs it) on a pre-published
    stream, from the start of the loop to the batch that counts the last relay."""
    await redis.flushall()
    publish_all(url, n, sessions)
    stop = asyncio.Event()
    counted = 0

    def on_batch(result: BatchResult) -> None:
        nonlocal counted
        counted += result.counted
        if counted >= n:
            stop.set()

    config = WorkerConfig(batch_size=batch, block_ms=50, consumer_name="w", smst_layout=layout)
    worker = RelayWorker(redis, SUPPLIER, config, on_batch=on_batch)
    t0 = time.perf_counter()
    await asyncio.gather(worker.run(stop), run_gc_freezer(stop))
    elapsed = time.perf_counter() - t0
    assert counted == n and await redis.xlen(STREAM) == 0, (counted, n)
    return n / elapsed


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


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
    parser.add_argument("--relays", type=int, default=100_000)
    parser.add_argument("--sessions", default="1,100,1000", help="comma-separated counts")
    parser.add_argument("--layouts", default="journal,go", help="comma-separated layouts")
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per session count")
    parser.add_argument("--e2e", action="store_true", help="also the end-to-end runs")
    args = parser.parse_args()
    n, batch = args.relays, args.batch
    counts = [int(x) for x in args.sessions.split(",")]
    layouts = [SMSTLayout(x) for x in args.layouts.split(",")]
    server = start_server(find_server_binary())
    redis = connect(server.url)
    runs: list[dict[str, object]] = []
    e2e: dict[str, float] | None = None
    paced: dict[str, float] | None = None
    try:
        for sessions in counts:
            samples: dict[SMSTLayout, list[dict[str, float]]] = {x: [] for x in layouts}
            for _ in range(args.repeat):
                for layout in layouts:
                    base = await baseline_drain(redis, server.url, n, sessions, batch)
                    rate = await worker_run(redis, server.url, n, sessions, batch, layout)
                    drained, per_relay = await worker_drain(
                        redis, server.url, n, sessions, batch, layout
                    )
                    sample = {
                        "baseline_bare_drain_per_s": base,
                        "worker_run_per_s": rate,
                        "worker_run_vs_baseline": rate / base,
                        "worker_drain_per_s": drained,
                        "worker_drain_vs_baseline": drained / base,
                        "used_memory_bytes_per_relay": per_relay,
                    }
                    samples[layout].append(sample)
                    print(
                        f"sessions={sessions} layout={layout.value}: bare {base:,.0f}/s, "
                        f"run {rate:,.0f}/s ({rate / base:.3f}x), drain {drained:,.0f}/s "
                        f"({drained / base:.3f}x), {per_relay:.0f} B/relay",
                        flush=True,
                    )
            for layout in layouts:
                got = samples[layout]
                runs.append(
                    {
                        "sessions": sessions,
                        "layout": layout.value,
                        "samples": got,
                        **{
                            name: spread([x[name] for x in got])
                            for name in (
                                "baseline_bare_drain_per_s",
                                "worker_run_per_s",
                                "worker_run_vs_baseline",
                                "worker_drain_vs_baseline",
                                "used_memory_bytes_per_relay",
                            )
                        },
                    }
                )
        if args.e2e:
            e2e = await end_to_end(redis, server.url, n, counts[0], batch)
            paced = await end_to_end(
                redis, server.url, n // 2, counts[0], batch, rate=e2e["throughput_per_s"] / 2
            )
    finally:
        await redis.aclose()
        server.stop()
    results = {
        "relays": n,
        "relay_bytes": 250,
        "batch": batch,
        "repeat": args.repeat,
        "server": server.binary,
        "runs": runs,
        "end_to_end": e2e,
        "paced_half_rate": paced,
    }
    write_report(HERE / "results" / "worker.json", results)
    print(
        "| sessions | layout | bare drain relays/s | worker run relays/s | run ratio (min..max) "
        "| drain ratio (min..max) | B/relay |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")

    def ratio(r: dict[str, object], name: str) -> str:
        x = r[name]
        assert isinstance(x, dict)
        return f"{x['median']:.3f}x ({x['min']:.3f}..{x['max']:.3f})"

    for r in runs:
        base_s, run_s, mem = (
            r["baseline_bare_drain_per_s"],
            r["worker_run_per_s"],
            r["used_memory_bytes_per_relay"],
        )
        assert isinstance(base_s, dict) and isinstance(run_s, dict) and isinstance(mem, dict)
        print(
            f"| {r['sessions']:,} | {r['layout']} | {base_s['median']:,.0f} | "
            f"{run_s['median']:,.0f} | {ratio(r, 'worker_run_vs_baseline')} | "
            f"{ratio(r, 'worker_drain_vs_baseline')} | {mem['median']:.0f} |"
        )
    if e2e is not None and paced is not None:
        print(
            f"end to end ({counts[0]} sessions): {e2e['throughput_per_s']:,.0f}/s, p50 "
            f"{e2e['latency_p50_ms']:.0f} ms, p99 {e2e['latency_p99_ms']:.0f} ms; paced at half: "
            f"p50 {paced['latency_p50_ms']:.1f} ms, p99 {paced['latency_p99_ms']:.1f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
