"""Tree builds in the event loop against builds in a worker process (``TreeBuilder``).

    .venv/bin/python bench/bench_tree_builder.py [--leaves 100000] [--groups 50]

What ``lifecycle.tree_build_processes`` changes for the replica's event loop, which also renews
the leases, mines relays and runs every other supplier's claims:

1. **One big session** (``--leaves``, relay-like 250-byte leaves): the longest the event loop
   stalls while :meth:`TreeBuilder.build_many` builds its tree, and the build's wall time.
2. **Claim groups** (``--groups`` groups of 10 sessions x 200 leaves, the lifecycle scale
   run's shape): the event loop's CPU per tree (the whole CPU of this process, over the
   trees built).

Each against the in-loop builder (``processes=0``, the baseline) in the same run. A ticker
task measures the stall: the longest gap between its wake-ups (asked every 1 ms). The worker
process is started, and warmed up by one build, before anything is timed. Writes
``bench/results/tree_builder.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import platform
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from relayminer.runtime.tree_builder import TreeBuilder

RESULTS = Path(__file__).resolve().parent / "results" / "tree_builder.json"
Leaf = tuple[bytes, bytes, int]


def make_leaves(n: int, seed: int) -> list[Leaf]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        value = rng.randbytes(250)
        out.append((hashlib.sha256(value).digest(), value, 42))
    return out


async def longest_stall(work: Any) -> tuple[float, float]:
    """(the longest gap between a 1 ms ticker's wake-ups while ``work`` runs, its wall time)"""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    worst = 0.0

    async def ticker() -> None:
        nonlocal worst
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = loop.time()
            worst = max(worst, now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    t0 = time.perf_counter()
    await work
    wall = time.perf_counter() - t0
    done.set()
    await task
    return worst, wall


async def run(args: argparse.Namespace) -> dict[str, Any]:
    big = make_leaves(args.leaves, 1)
    groups = [[make_leaves(200, 1000 * g + i) for i in range(10)] for g in range(args.groups)]
    out: dict[str, Any] = {}
    for processes in (0, 1):
        builder = TreeBuilder(processes)
        try:
            await builder.build_many([big[:1000]])  # start and warm the worker process
            stall, wall = await longest_stall(builder.build_many([big]))
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            for group in groups:
                await builder.build_many(group)
            cpu = time.process_time() - cpu0
            group_wall = time.perf_counter() - t0
        finally:
            builder.close()
        trees = 10 * args.groups
        out[f"processes_{processes}"] = {
            "big_build_wall_s": round(wall, 3),
            "big_build_longest_loop_stall_s": round(stall, 3),
            "groups_loop_cpu_ms_per_tree": round(1000 * cpu / trees, 3),
            "groups_wall_ms_per_tree": round(1000 * group_wall / trees, 3),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=50)
    args, _ = parser.parse_known_args()
    r = asyncio.run(run(args))
    inline, pool = r["processes_0"], r["processes_1"]
    print("| what | in the event loop (baseline) | 1 worker process | ratio |")
    print("| --- | --- | --- | --- |")
    for key, label in (
        ("big_build_longest_loop_stall_s", f"longest loop stall, {args.leaves:,}-leaf build (s)"),
        ("big_build_wall_s", f"wall of the {args.leaves:,}-leaf build (s)"),
        ("groups_loop_cpu_ms_per_tree", "loop CPU per 200-leaf tree, groups of 10 (ms)"),
        ("groups_wall_ms_per_tree", "wall per 200-leaf tree, groups of 10 (ms)"),
    ):
        ratio = pool[key] / inline[key] if inline[key] else float("nan")
        print(f"| {label} | {inline[key]} | {pool[key]} | {ratio:.2f}x |")
    RESULTS.parent.mkdir(exist_ok=True)
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "leaves": args.leaves,
        "groups": args.groups,
        **r,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
