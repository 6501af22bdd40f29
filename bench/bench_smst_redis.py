"""Redis-backed SMST benchmark: batched inserts, resume, and closest proofs on a real server.

A private ``redis-server`` is started with :func:`relayminer.runtime.embedded.start_server` and
reached
through :func:`relayminer.runtime.connections.connect`, like the miner does. Workload (relay-like
leaves,
the same generator as ``bench_smst_memory.py``): value = 200-300 random bytes,
key = sha256(value), weight 42.

Measured:

* ``insert``: one session grown from 0 to ``--leaves`` leaves by :meth:`RedisSMSTStore.apply`
  in batches of ``--batch`` (each batch = trie updates + one atomic commit in Redis); reported
  over the whole run and over the last ``--tail`` leaves. Target: >= 20,000 leaves/s.
  ``--repeat`` runs (default 3), each followed by the same trie work in memory; the table
  shows the median run, the JSON every run (the machine's noise).
  Baselines: (1) the SHA-256 floor, i.e. a bare ``hashlib.sha256(p).digest()`` loop over the
  preimages the same trie work hashes (collected by an instrumented in-memory run with the same
  batches, as in ``bench_smst_memory.py``); (2) the same trie work on a ``MemoryMapStore``
  (``commit()`` after each batch), timed right after the Redis run: the part of the cost that is
  Redis (I/O, the server's HSET/HDEL, RESP encoding).
* ``resume``: the first ``apply`` of ``--batch`` new leaves from a *fresh* store object (the
  tree is imported lazily from ``live_root`` and the nodes the batch needs are prefetched in one
  round trip), ``--resumes`` times. Baseline: the median steady-state batch of the tail.
* ``prove_closest``: ``--proofs`` random paths on the sealed ``--leaves``-leaf tree, each from
  a fresh store object (nothing cached: every node comes from Redis). Target: < 50 ms.
  Baseline: ``prove_closest`` of the same paths on the in-memory trie of the same leaves. Every
  proof is checked to be byte-identical (compact gob) to the in-memory one and to verify.
  The commands per proof are counted.

Everything runs in one Python thread (asyncio, one connection at a time): one core for the
trie, the server in its own process, over TCP loopback. ``--pin`` pins the two to two different
CPUs (on the 2-vCPU machine this was written on, pinning made runs slower and noisier, so it is
off by default). GC: by default the runs use the miner processes' policy (``gc.freeze`` so the
collector does not rescan the long-lived trie; :mod:`relayminer.runtime.gcpolicy`); ``--gc default``
keeps Python's settings, where a full collection over the cached 100k-leaf tree takes 100-230 ms
and usually lands once in the last 20,000 leaves. Run:
``.venv/bin/python bench/bench_smst_redis.py`` (about 30 s); writes
``bench/results/smst_redis.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
from redis.asyncio import Redis

from bench_smst_memory import gc_timer, make_leaves, recording_sha256, sha_floor, write_report
from relayminer.runtime.connections import connect
from relayminer.runtime.embedded import start_server
from relayminer.smst.mapstore import MemoryMapStore
from relayminer.smst.proof import verify_closest_proof
from relayminer.smst.redis_store import RedisSMSTStore
from relayminer.smst.trie import SparseMerkleSumTrie

RESULTS = Path(__file__).resolve().parent / "results" / "smst_redis.json"
SUPPLIER = "pokt1benchsupplier"
SESSION = "bench-session"
PROOF_SESSION = "bench-session-proofs"  # a server-side COPY of the tree at --leaves, sealed
TARGET_INSERTS_PER_SECOND = 20_000
TARGET_PROOF_MS = 50.0

Leaf = tuple[bytes, bytes, int]


def batches(leaves: list[Leaf], size: int) -> list[list[Leaf]]:
    return [leaves[i : i + size] for i in range(0, len(leaves), size)]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in [0, 100])."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


#: GC policy of the measured runs: "freeze" is what the miner processes do
#: (relayminer.runtime.gcpolicy
#: freezes every 0.5 s; here after every batch, the same effect in a synchronous loop), "default"
#: leaves Python's collector as it is.
GC_POLICY = "freeze"


def _after_batch() -> None:
    if GC_POLICY == "freeze":
        gc.freeze()


def memory_inserts(groups: list[list[Leaf]]) -> tuple[SparseMerkleSumTrie, list[float]]:
    """The trie work of the Redis run on a MemoryMapStore: per-batch seconds."""
    trie = SparseMerkleSumTrie(MemoryMapStore())
    update = trie.update
    times = []
    for group in groups:
        start = time.perf_counter()
        for key, value, weight in group:
            update(key, value, weight)
        trie.commit()
        _after_batch()
        times.append(time.perf_counter() - start)
    gc.unfreeze()
    return trie, times


def recorded_preimages(groups: list[list[Leaf]], tail_from: int) -> tuple[list[bytes], list[bytes]]:
    """Preimages hashed by the same trie work: (all batches, batches from ``tail_from`` on)."""
    trie = SparseMerkleSumTrie(MemoryMapStore())
    with recording_sha256() as head:
        for group in groups[:tail_from]:
            for leaf in group:
                trie.update(*leaf)
            trie.commit()
    with recording_sha256() as tail:
        for group in groups[tail_from:]:
            for leaf in group:
                trie.update(*leaf)
            trie.commit()
    return head + tail, tail


class CommandCounter:
    """Counts the commands a client sends through ``execute_command`` (scripts included)."""

    def __init__(self, client: Redis) -> None:
        self.count = 0
        inner: Callable[..., Awaitable[Any]] = client.execute_command

        async def counting(*args: Any, **options: Any) -> Any:
            self.count += 1
            return await inner(*args, **options)

        client.execute_command = counting  # type: ignore[method-assign]


def server_cpu_seconds(url: str) -> float:
    with redis.Redis.from_url(url) as client:
        info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def server_exec_usec(url: str) -> int:
    """Server time spent in EXEC (the commit transactions) since the last stats reset."""
    with redis.Redis.from_url(url) as client:
        stats = client.info("commandstats")
    return int(stats.get("cmdstat_exec", {}).get("usec", 0))


async def insert_run(url: str, client: Redis, groups: list[list[Leaf]]) -> dict[str, Any]:
    """Grow SESSION from nothing through ``apply``: per-batch seconds and CPU accounting."""
    await client.flushall()
    await client.config_resetstat()
    store = RedisSMSTStore(client, SUPPLIER)
    times: list[float] = []
    cpu0, server0 = time.process_time(), server_cpu_seconds(url)
    with gc_timer() as gc_seconds:
        for group in groups:
            start = time.perf_counter()
            if not await store.apply(SESSION, group):
                raise SystemExit("apply refused")
            _after_batch()
            times.append(time.perf_counter() - start)
    gc.unfreeze()
    cpu1, server1 = time.process_time(), server_cpu_seconds(url)
    return {
        "root": await store.live_root(SESSION),
        "times": times,
        "cpu_seconds": cpu1 - cpu0,
        "server_cpu_seconds": server1 - server0,
        "server_exec_seconds": server_exec_usec(url) / 1e6,
        "gc_seconds": gc_seconds[0],
    }


async def resume_and_prove(
    client: Redis, resume_groups: list[list[Leaf]], paths: list[bytes]
) -> dict[str, Any]:
    """On the tree the last insert run left: resumes from fresh stores, then proofs on a sealed
    server-side copy of it (fresh store per proof)."""
    store = RedisSMSTStore(client, SUPPLIER)
    root = await store.live_root(SESSION)
    entries = await client.hlen(store.nodes_key(SESSION))
    used_memory = (await client.info("memory"))["used_memory"]
    for key in (store.nodes_key, store.live_root_key):  # the resumes grow the original
        await client.copy(key(SESSION), key(PROOF_SESSION))

    resume_times = []
    resume_reads = []
    for group in resume_groups:
        fresh = RedisSMSTStore(client, SUPPLIER)
        counter = CommandCounter(client)
        start = time.perf_counter()
        if not await fresh.apply(SESSION, group):
            raise SystemExit("apply refused")
        resume_times.append(time.perf_counter() - start)
        resume_reads.append(counter.count)
        del client.execute_command  # drop the counting wrapper

    if await RedisSMSTStore(client, SUPPLIER).seal(PROOF_SESSION) != root:
        raise SystemExit("sealed root differs from live_root")
    proofs = []
    proof_times = []
    proof_commands = []
    for path in paths:
        fresh = RedisSMSTStore(client, SUPPLIER)
        counter = CommandCounter(client)
        start = time.perf_counter()
        proof_root, proof = await fresh.prove_closest(PROOF_SESSION, path)
        proof_times.append(time.perf_counter() - start)
        proof_commands.append(counter.count)
        del client.execute_command
        if proof_root != root:
            raise SystemExit("proof against another root")
        proofs.append(proof)
    return {
        "root": root,
        "store_entries": entries,
        "server_used_memory": used_memory,
        "resume_times": resume_times,
        "resume_reads": resume_reads,
        "proof_times": proof_times,
        "proof_commands": proof_commands,
        "proofs": proofs,
    }


async def run_all(
    url: str,
    repeat: int,
    groups: list[list[Leaf]],
    resume_groups: list[list[Leaf]],
    paths: list[bytes],
) -> tuple[list[dict[str, Any]], list[list[float]], SparseMerkleSumTrie, dict[str, Any]]:
    """``repeat`` x (Redis insert run, then the same trie work in memory), then resumes and
    proofs. Returns the Redis runs, the in-memory per-batch times, the last in-memory trie and
    the resume/proof measurements."""
    client = connect(url)
    try:
        runs: list[dict[str, Any]] = []
        memory_times: list[list[float]] = []
        trie = SparseMerkleSumTrie()
        for _ in range(repeat):
            runs.append(await insert_run(url, client, groups))
            del trie
            gc.collect()
            trie, times = memory_inserts(groups)
            memory_times.append(times)
            if trie.root() != runs[-1]["root"]:
                raise SystemExit("the Redis tree and the in-memory trie differ")
            gc.collect()
        return runs, memory_times, trie, await resume_and_prove(client, resume_groups, paths)
    finally:
        await client.aclose()


def pin(server_pid: int) -> dict[str, Any]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return {"pinned": False, "cpus": cpus}
    os.sched_setaffinity(0, {cpus[0]})
    os.sched_setaffinity(server_pid, {cpus[1]})
    return {"pinned": True, "bench_cpu": cpus[0], "server_cpu": cpus[1]}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    pairs = make_leaves(args.leaves + args.resumes * args.batch, args.seed)
    leaves = [(key, value, 42) for key, value in pairs]
    groups = batches(leaves[: args.leaves], args.batch)
    resume_groups = batches(leaves[args.leaves :], args.batch)
    tail_from = (args.leaves - args.tail) // args.batch
    prng = random.Random(args.seed + 1)
    paths = [prng.randbytes(32) for _ in range(args.proofs)]

    server = start_server()
    try:
        placement = pin(server.pid) if args.pin else {"pinned": False}
        runs, memory_times, trie, after = asyncio.run(
            run_all(server.url, args.repeat, groups, resume_groups, paths)
        )
        server_binary = server.binary
    finally:
        server.stop()

    mem_proof_times = []
    for path, redis_proof in zip(paths, after["proofs"], strict=True):
        start = time.perf_counter()
        proof = trie.prove_closest(path)
        mem_proof_times.append(time.perf_counter() - start)
        if proof.compact().to_bytes() != redis_proof.compact().to_bytes():
            raise SystemExit("a Redis proof differs from the in-memory proof")
        if not verify_closest_proof(redis_proof, trie.root()):
            raise SystemExit("a Redis proof does not verify")
    del trie
    gc.collect()
    everything, tail = recorded_preimages(groups, tail_from)
    floor_all, floor_tail = sha_floor(everything), sha_floor(tail)

    n_all, n_tail = args.leaves, args.leaves - tail_from * args.batch
    per_run = []
    for run, mem in zip(runs, memory_times, strict=True):
        t = run["times"]
        per_run.append(
            {
                "whole_leaves_per_second": round(n_all / sum(t)),
                "tail_leaves_per_second": round(n_tail / sum(t[tail_from:])),
                "in_memory_whole_leaves_per_second": round(n_all / sum(mem)),
                "in_memory_tail_leaves_per_second": round(n_tail / sum(mem[tail_from:])),
                "bench_cpu_seconds": round(run["cpu_seconds"], 3),
                "bench_gc_seconds": round(run["gc_seconds"], 3),
                "server_cpu_seconds": round(run["server_cpu_seconds"], 3),
                "server_exec_seconds": round(run["server_exec_seconds"], 3),
                "wall_seconds": round(sum(t), 3),
            }
        )
    # The headline is the median run (by whole-run time); its in-memory twin ran right after it.
    order = sorted(range(len(runs)), key=lambda i: sum(runs[i]["times"]))
    median = order[len(order) // 2]
    times, mem_times = runs[median]["times"], memory_times[median]
    t_all, t_tail = sum(times), sum(times[tail_from:])
    m_all, m_tail = sum(mem_times), sum(mem_times[tail_from:])
    batch_ms = [t * 1e3 for t in times[tail_from:]]
    steady_ms = statistics.median(batch_ms)
    resume_ms = [t * 1e3 for t in after["resume_times"]]
    proof_ms = [t * 1e3 for t in after["proof_times"]]
    mem_proof_ms = [t * 1e3 for t in mem_proof_times]

    def insert_row(name: str, n: int, seconds: float, mem: float, floor: float) -> dict[str, Any]:
        return {
            "name": name,
            "leaves": n,
            "seconds": round(seconds, 4),
            "leaves_per_second": round(n / seconds),
            "us_per_leaf": round(seconds / n * 1e6, 2),
            "in_memory_seconds": round(mem, 4),
            "in_memory_leaves_per_second": round(n / mem),
            "ratio_to_in_memory": round(seconds / mem, 2),
            "sha256_floor_seconds": round(floor, 4),
            "ratio_to_sha256_floor": round(seconds / floor, 2),
        }

    rows = [
        insert_row(
            f"insert 0 -> {args.leaves} leaves, batches of {args.batch}",
            n_all,
            t_all,
            m_all,
            floor_all,
        ),
        insert_row(
            f"insert, last {n_tail} leaves ({args.leaves - n_tail} -> {args.leaves})",
            n_tail,
            t_tail,
            m_tail,
            floor_tail,
        ),
    ]
    return {
        "benchmark": "smst_redis",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "server": server_binary,
        "transport": "tcp loopback",
        "placement": placement,
        "config": {
            "leaves": args.leaves,
            "batch": args.batch,
            "tail": n_tail,
            "repeat": args.repeat,
            "resumes": args.resumes,
            "proofs": args.proofs,
            "seed": args.seed,
            "value_bytes": "200-300 random",
            "weight": 42,
            "gc": GC_POLICY,
        },
        "final_leaves": args.leaves,
        "store_entries": after["store_entries"],
        "server_used_memory_bytes": after["server_used_memory"],
        "targets": {
            "inserts_per_second": TARGET_INSERTS_PER_SECOND,
            "proof_ms": TARGET_PROOF_MS,
        },
        "insert": rows,
        "insert_runs": per_run,
        "insert_headline_run": median,
        "insert_tail_batch_ms": {
            "p10": round(percentile(batch_ms, 10), 2),
            "median": round(steady_ms, 2),
            "p90": round(percentile(batch_ms, 90), 2),
            "max": round(max(batch_ms), 2),
        },
        "resume": {
            "name": f"first apply of {args.batch} leaves from a fresh store "
            f"({args.leaves}+ leaf tree)",
            "runs": len(resume_ms),
            "ms": [round(t, 2) for t in resume_ms],
            "median_ms": round(statistics.median(resume_ms), 2),
            "reads": sorted(set(after["resume_reads"])),
            "baseline_steady_batch_ms": round(steady_ms, 2),
            "ratio_to_steady_batch": round(statistics.median(resume_ms) / steady_ms, 2),
        },
        "prove_closest": {
            "name": f"prove_closest from a fresh store, {args.leaves}-leaf sealed tree",
            "proofs": len(proof_ms),
            "median_ms": round(statistics.median(proof_ms), 3),
            "p99_ms": round(percentile(proof_ms, 99), 3),
            "max_ms": round(max(proof_ms), 3),
            "commands_per_proof": sorted(set(after["proof_commands"])),
            "in_memory_median_ms": round(statistics.median(mem_proof_ms), 4),
            "in_memory_p99_ms": round(percentile(mem_proof_ms, 99), 4),
            "ratio_median_to_in_memory": round(
                statistics.median(proof_ms) / statistics.median(mem_proof_ms), 1
            ),
        },
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| work | value | baseline | ratio |",
        "|---|---:|---:|---:|",
    ]
    for r in report["insert"]:
        floor_us = r["sha256_floor_seconds"] / r["leaves"] * 1e6
        mem_us = r["in_memory_seconds"] / r["leaves"] * 1e6
        lines.append(
            f"| {r['name']} | {r['leaves_per_second']:,} leaves/s ({r['us_per_leaf']:.1f} µs/leaf)"
            f" | SHA-256 floor {floor_us:.1f} µs/leaf | {r['ratio_to_sha256_floor']:.1f}x |"
        )
        lines.append(
            f"| ↳ same trie work in memory | | {r['in_memory_leaves_per_second']:,} leaves/s"
            f" ({mem_us:.1f} µs/leaf) | {r['ratio_to_in_memory']:.2f}x |"
        )
    res = report["resume"]
    lines.append(
        f"| {res['name']} | {res['median_ms']:.1f} ms (median of {res['runs']}) | steady batch "
        f"{res['baseline_steady_batch_ms']:.1f} ms | {res['ratio_to_steady_batch']:.1f}x |"
    )
    p = report["prove_closest"]
    lines.append(
        f"| {p['name']} | median {p['median_ms']:.2f} ms, p99 {p['p99_ms']:.2f} ms"
        f" | in memory {p['in_memory_median_ms'] * 1e3:.0f} µs"
        f" | {p['ratio_median_to_in_memory']:.0f}x |"
    )
    runs = report["insert_runs"]
    whole = sorted(r["whole_leaves_per_second"] for r in runs)
    tail = sorted(r["tail_leaves_per_second"] for r in runs)
    lines.append("")
    lines.append(
        f"{len(runs)} insert runs: whole {whole[0]:,}-{whole[-1]:,} leaves/s, last"
        f" {report['config']['tail']:,} {tail[0]:,}-{tail[-1]:,} leaves/s; tail batch of"
        f" {report['config']['batch']}: median {report['insert_tail_batch_ms']['median']:.1f} ms,"
        f" p90 {report['insert_tail_batch_ms']['p90']:.1f} ms;"
        f" commands per proof {p['commands_per_proof']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--leaves", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--tail", type=int, default=20_000)
    parser.add_argument("--resumes", type=int, default=5)
    parser.add_argument("--proofs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20260)
    parser.add_argument("--repeat", type=int, default=3, help="insert runs (median reported)")
    parser.add_argument("--pin", action="store_true", help="bench on one CPU, server on another")
    parser.add_argument(
        "--gc",
        choices=["freeze", "default"],
        default="freeze",
        help="GC policy (freeze: as the miner processes; default: Python's)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    global GC_POLICY
    GC_POLICY = args.gc
    if not 0 < args.tail <= args.leaves:
        parser.error("--tail must be in (0, --leaves]")
    if args.repeat < 1 or args.resumes < 1 or args.proofs < 1:
        parser.error("--repeat, --resumes and --proofs must be positive")

    report = measure(args)
    print(markdown(report))
    whole, tail = (r["leaves_per_second"] for r in report["insert"])
    proof_p99 = report["prove_closest"]["p99_ms"]

    def verdict(ok: bool) -> str:
        return "meets" if ok else "MISSES"

    print(
        f"\ninserts: {whole:,}/s whole run, {tail:,}/s last {report['config']['tail']:,}"
        f" ({verdict(min(whole, tail) >= TARGET_INSERTS_PER_SECOND)} the"
        f" {TARGET_INSERTS_PER_SECOND:,}/s target);"
        f" prove_closest p99 {proof_p99:.2f} ms"
        f" ({verdict(proof_p99 < TARGET_PROOF_MS)} the {TARGET_PROOF_MS:.0f} ms target)"
    )
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
