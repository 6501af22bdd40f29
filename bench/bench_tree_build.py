"""Claim-time tree builds from the leaf journal, each next to a baseline of the same run.

    .venv/bin/python bench/bench_tree_build.py [--leaves 100000] [--big 1000000]

Leaves are relay-like: 250 random bytes, key = sha256(value), weight 42.

1. **100k-leaf session read from Redis** (target <= 1.5 s): the journal written to a private
   ``redis-server``, then :func:`build_session_tree` (HSCAN, decode, bulk build with its node
   store, proof-ready). Baselines: the HSCAN read alone; the SHA-256 floor (a bare
   ``sha256(p).digest()`` loop over exactly the preimages the build hashes, recorded in a second
   run); the incremental build of the same leaves in memory (``update`` each, one ``commit``).
2. **1M leaves in memory** (target <= 15 s): :func:`bulk_build` with its node store, and
   :func:`bulk_root` alone. Baseline: the SHA-256 floor of the same preimages (and, with
   ``--incremental-big``, the incremental build; off by default, it takes minutes).
3. **100k-leaf session proved in a fresh process** (target <= 2 s): a child Python process
   imports relayminer, connects, rebuilds the tree from the journal, proves one path, compacts,
   gob-encodes and verifies. Wall time from spawn to exit. Baseline: a fresh process that
   imports relayminer, connects and PINGs.

Prints a markdown table and writes ``bench/results/tree_build.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import platform
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import relayminer.smst.nodes as nodes_module
from bench_smst_memory import sha_floor, write_report
from relayminer.runtime.connections import connect
from relayminer.runtime.embedded import start_server
from relayminer.smst.bulk import bulk_build, bulk_root
from relayminer.smst.journal import build_session_tree, insert_leaves, journal_keys, read_leaves
from relayminer.smst.trie import SparseMerkleSumTrie

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "tree_build.json"
SUPPLIER = "pokt1benchsupplier"
SESSION = "bench-session"
TTL = 7200

Leaf = tuple[bytes, bytes, int]


def make_leaves(n: int, seed: int, size: int = 250) -> list[Leaf]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        value = rng.randbytes(size)
        out.append((hashlib.sha256(value).digest(), value, 42))
    return out


@contextmanager
def recording_sha256() -> Iterator[list[bytes]]:
    """Record every preimage the bulk build hashes (it looks ``hashlib.sha256`` up per call,
    the extension chains hash through ``nodes._sha256``)."""
    seen: list[bytes] = []
    real = hashlib.sha256

    def record(data: bytes = b"") -> Any:
        seen.append(bytes(data))
        return real(data)

    hashlib.sha256 = record  # type: ignore[assignment]
    nodes_module._sha256 = record  # type: ignore[assignment]
    try:
        yield seen
    finally:
        hashlib.sha256 = real
        nodes_module._sha256 = real


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


async def atimed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = await fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def incremental(leaves: list[Leaf]) -> bytes:
    trie = SparseMerkleSumTrie()
    update = trie.update
    for leaf in leaves:
        update(*leaf)
    trie.commit()
    return trie.root()


def row(
    name: str, seconds: float, target: float | None, baselines: dict[str, float]
) -> dict[str, Any]:
    return {
        "name": name,
        "seconds": round(seconds, 3),
        "target_seconds": target,
        "meets_target": None if target is None else seconds <= target,
        "baselines_seconds": {k: round(v, 3) for k, v in baselines.items()},
        "ratios": {k: round(seconds / v, 2) for k, v in baselines.items() if v},
    }


# --- the child process of measurement 3 --------------------------------------------------------

CHILD = """
import asyncio, sys, time
t0 = time.perf_counter()
from relayminer.runtime.connections import connect
from relayminer.smst.journal import build_session_tree
from relayminer.smst.proof import CompactClosestProof, verify_compact_closest_proof

async def main(url, mode, supplier, sid, path_hex):
    redis = connect(url)
    if mode == 'ping':
        await redis.ping()
    else:
        t1 = time.perf_counter()
        trie = await build_session_tree(redis, supplier, sid)
        blob = trie.prove_closest(bytes.fromhex(path_hex)).compact().to_bytes()
        ok = verify_compact_closest_proof(CompactClosestProof.from_bytes(blob), trie.root())
        assert ok, 'proof does not verify'
        print('inner', time.perf_counter() - t1, len(blob))
    await redis.aclose()

asyncio.run(main(*sys.argv[1:]))
print('total', time.perf_counter() - t0)
"""


def fresh_process(url: str, mode: str, path: bytes) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, url, mode, SUPPLIER, SESSION, path.hex()],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    wall = time.perf_counter() - start
    figures = {line.split()[0]: float(line.split()[1]) for line in out.splitlines()}
    return wall, figures


# --- measurements ---------------------------------------------------------------------------


async def from_redis(args: argparse.Namespace) -> list[dict[str, Any]]:
    leaves = make_leaves(args.leaves, args.seed)
    server = start_server()
    redis = connect(server.url)
    try:
        for i in range(0, len(leaves), 2000):
            await insert_leaves(redis, SUPPLIER, SESSION, leaves[i : i + 2000], ttl_seconds=TTL)
        key = journal_keys(SUPPLIER, SESSION).leaves
        t_read, read = await atimed(lambda: read_leaves(redis, key), args.repeat)
        assert len(read) == len(leaves)
        t_build, trie = await atimed(
            lambda: build_session_tree(redis, SUPPLIER, SESSION), args.repeat
        )
        with recording_sha256() as preimages:
            bulk_build(read)
        floor = sha_floor(preimages)
        t_inc, inc_root = timed(lambda: incremental(leaves))
        assert trie.root() == inc_root, "bulk and incremental roots differ"

        path = random.Random(args.seed + 1).randbytes(32)
        walls = [fresh_process(server.url, "prove", path) for _ in range(args.repeat)]
        pings = [fresh_process(server.url, "ping", path) for _ in range(args.repeat)]
        wall, figures = min(walls)
        ping_wall, _ = min(pings)
    finally:
        await redis.aclose()
        server.stop()
    n = len(leaves)
    return [
        row(
            f"build a {n:,}-leaf session read from Redis (HSCAN + decode + bulk build)",
            t_build,
            1.5,
            {
                "HSCAN read + decode alone": t_read,
                f"sha256 floor ({len(preimages):,} preimages)": floor,
                "incremental build in memory": t_inc,
            },
        ),
        row(
            f"prove a {n:,}-leaf session in a fresh process (spawn + import + rebuild + prove)",
            wall,
            2.0,
            {
                "fresh process: import + connect + PING": ping_wall,
                "in-child rebuild + prove + gob + verify": figures["inner"],
            },
        ),
    ]


def in_memory(args: argparse.Namespace) -> list[dict[str, Any]]:
    leaves = make_leaves(args.big, args.seed + 2)
    t_build, trie = timed(lambda: bulk_build(leaves))
    store_entries = len(trie.store)
    root = trie.root()
    del trie
    t_root, root_only = timed(lambda: bulk_root(leaves))
    assert root_only == root
    with recording_sha256() as preimages:
        bulk_root(leaves)
    floor = sha_floor(preimages, repeat=1)
    baselines = {f"sha256 floor ({len(preimages):,} preimages)": floor}
    if args.incremental_big:
        t_inc, inc_root = timed(lambda: incremental(leaves))
        assert inc_root == root
        baselines["incremental build in memory"] = t_inc
    del preimages
    return [
        row(
            f"bulk build of {len(leaves):,} leaves with node store ({store_entries:,} nodes)",
            t_build,
            15.0,
            baselines,
        ),
        row(f"bulk root of {len(leaves):,} leaves (no store)", t_root, None, baselines),
    ]


def markdown(report: dict[str, Any]) -> str:
    lines = ["| what | seconds | target | baselines (same run) |", "|---|---:|---:|---|"]
    for r in report["results"]:
        target = "" if r["target_seconds"] is None else f"≤ {r['target_seconds']} s"
        base = "; ".join(
            f"{k}: {v} s ({r['ratios'].get(k, 0)}x)" for k, v in r["baselines_seconds"].items()
        )
        lines.append(f"| {r['name']} | {r['seconds']} | {target} | {base} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--leaves", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--incremental-big", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = asyncio.run(from_redis(args))
    if args.big:
        results += in_memory(args)
    report = {
        "benchmark": "tree_build",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "config": {k: v for k, v in vars(args).items() if k != "output"},
        "results": results,
    }
    print(markdown(report))
    write_report(args.output, json.loads(json.dumps(report, default=str)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
