"""In-memory Sparse Merkle Sum Trie benchmark: inserts, proofs, and the SHA-256 floor.

Workload (relay-like leaves): value = 200-300 random bytes, key = sha256(value), weight 42;
``commit()`` every ``--commit-every`` inserts into a :class:`MemoryMapStore`.

Measured, each next to the time of just the SHA-256 calls the same work needs:

* ``build``: inserting the first ``--leaves`` leaves into an empty trie;
* ``insert into N-leaf trie``: ``--extra`` more inserts into that trie (the headline figure);
* ``insert into imported trie``: ``--extra`` other inserts into a trie resumed with
  ``import_root`` from a copy of the committed store (nodes load lazily, as after a restart);
* ``prove+compact+gob``: ``prove_closest`` of random paths, ``compact()`` and ``to_bytes()``;
* ``gob decode+verify``: ``CompactClosestProof.from_bytes`` and ``verify_compact_closest_proof``.

The SHA-256 floor comes from a second, instrumented run of the same deterministic work: the
trie's ``sha256`` is swapped for a recorder, the preimages are collected, and then a bare loop
``hashlib.sha256(p).digest()`` over them is timed. ``ratio = measured / floor``.

Default GC settings are kept (the trie's inner nodes are GC-tracked objects, so full
collections are part of the cost); the JSON also reports the time spent in the collector.

Run: ``.venv/bin/python bench/bench_smst_memory.py`` (about 15 s); writes
``bench/results/smst_memory.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import platform
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import relayminer.smst.nodes as nodes_module
import relayminer.smst.shape as smst_module
from relayminer.smst.mapstore import MemoryMapStore
from relayminer.smst.proof import CompactClosestProof, verify_compact_closest_proof
from relayminer.smst.trie import SparseMerkleSumTrie

RESULTS = Path(__file__).resolve().parent / "results" / "smst_memory.json"
_real_sha256 = hashlib.sha256


@contextmanager
def recording_sha256() -> Iterator[list[bytes]]:
    """Swap the sha256 the trie modules call for one that records every preimage."""
    seen: list[bytes] = []

    def record(data: bytes = b"") -> Any:
        seen.append(bytes(data))
        return _real_sha256(data)

    smst_module.sha256 = record  # type: ignore[assignment]
    nodes_module._sha256 = record  # type: ignore[assignment]
    try:
        yield seen
    finally:
        smst_module.sha256 = _real_sha256
        nodes_module._sha256 = _real_sha256


@contextmanager
def gc_timer() -> Iterator[list[float]]:
    """Seconds spent in the garbage collector while the block runs (``total[0]``)."""
    total = [0.0]
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            total[0] += time.perf_counter() - started[0]

    gc.callbacks.append(callback)
    try:
        yield total
    finally:
        gc.callbacks.remove(callback)


def sha_floor(preimages: list[bytes], repeat: int = 3) -> float:
    """Best time of a bare ``sha256(p).digest()`` loop over ``preimages``."""
    sha = _real_sha256
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for p in preimages:
            sha(p).digest()
        best = min(best, time.perf_counter() - start)
    return best


def make_leaves(n: int, seed: int) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        value = rng.randbytes(rng.randint(200, 300))
        out.append((hashlib.sha256(value).digest(), value))
    return out


def insert_all(
    trie: SparseMerkleSumTrie, leaves: list[tuple[bytes, bytes]], commit_every: int
) -> float:
    update = trie.update
    start = time.perf_counter()
    for i, (key, value) in enumerate(leaves, 1):
        update(key, value, 42)
        if i % commit_every == 0:
            trie.commit()
    trie.commit()
    return time.perf_counter() - start


def prove_all(trie: SparseMerkleSumTrie, paths: list[bytes]) -> tuple[float, list[bytes]]:
    blobs = []
    start = time.perf_counter()
    for path in paths:
        blobs.append(trie.prove_closest(path).compact().to_bytes())
    return time.perf_counter() - start, blobs


def verify_all(blobs: list[bytes], root: bytes) -> tuple[float, bool]:
    ok = True
    start = time.perf_counter()
    for blob in blobs:
        ok &= verify_compact_closest_proof(CompactClosestProof.from_bytes(blob), root)
    return time.perf_counter() - start, ok


def measure(args: argparse.Namespace) -> dict[str, Any]:
    leaves = make_leaves(args.leaves + 2 * args.extra, args.seed)
    base = leaves[: args.leaves]
    extra = leaves[args.leaves : args.leaves + args.extra]
    extra2 = leaves[args.leaves + args.extra :]
    prng = random.Random(args.seed + 1)
    paths = [prng.randbytes(32) for _ in range(args.proofs)]

    # Run 1: timed.
    trie = SparseMerkleSumTrie(MemoryMapStore())
    with gc_timer() as gc_build:
        t_build = insert_all(trie, base, args.commit_every)
    with gc_timer() as gc_extra:
        t_extra = insert_all(trie, extra, args.commit_every)
    root = trie.root()
    resumed = SparseMerkleSumTrie.import_root(MemoryMapStore(trie.store.items()), root)
    with gc_timer() as gc_resumed:
        t_resumed = insert_all(resumed, extra2, args.commit_every)
    t_prove, blobs = prove_all(trie, paths)
    t_verify, verified = verify_all(blobs, root)
    if not verified:
        raise SystemExit("a proof did not verify")

    # Run 2: the same work, recording what gets hashed.
    trie2 = SparseMerkleSumTrie(MemoryMapStore())
    with recording_sha256() as pre_build:
        insert_all(trie2, base, args.commit_every)
    with recording_sha256() as pre_extra:
        insert_all(trie2, extra, args.commit_every)
    if trie2.root() != root:
        raise SystemExit("instrumented run diverged")
    resumed2 = SparseMerkleSumTrie.import_root(MemoryMapStore(trie2.store.items()), root)
    with recording_sha256() as pre_resumed:
        insert_all(resumed2, extra2, args.commit_every)
    if resumed2.root() != resumed.root():
        raise SystemExit("instrumented resumed run diverged")
    with recording_sha256() as pre_prove:
        prove_all(trie2, paths)
    with recording_sha256() as pre_verify:
        verify_all(blobs, root)

    def row(
        name: str, ops: int, seconds: float, preimages: list[bytes], unit: str
    ) -> dict[str, Any]:
        floor = sha_floor(preimages) if preimages else 0.0
        return {
            "name": name,
            "ops": ops,
            "seconds": round(seconds, 4),
            "ops_per_second": round(ops / seconds),
            "us_per_op": round(seconds / ops * 1e6, 2),
            "unit": unit,
            "sha256_calls": len(preimages),
            "sha256_calls_per_op": round(len(preimages) / ops, 2),
            "sha256_floor_seconds": round(floor, 4),
            "ratio_to_sha256_floor": round(seconds / floor, 2) if floor else None,
        }

    rows = [
        row(f"build 0 -> {args.leaves} leaves", len(base), t_build, pre_build, "insert"),
        row(
            f"insert into {args.leaves}-leaf trie",
            len(extra),
            t_extra,
            pre_extra,
            "insert",
        ),
        row(
            f"insert into imported {args.leaves + args.extra}-leaf trie (lazy loads)",
            len(extra2),
            t_resumed,
            pre_resumed,
            "insert",
        ),
        row("prove_closest + compact + gob", len(paths), t_prove, pre_prove, "proof"),
        row("gob decode + verify_compact", len(paths), t_verify, pre_verify, "proof"),
    ]
    rows[0]["gc_seconds"] = round(gc_build[0], 4)
    rows[1]["gc_seconds"] = round(gc_extra[0], 4)
    rows[2]["gc_seconds"] = round(gc_resumed[0], 4)
    return {
        "benchmark": "smst_memory",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "config": {
            "leaves": args.leaves,
            "extra": args.extra,
            "commit_every": args.commit_every,
            "proofs": args.proofs,
            "seed": args.seed,
            "value_bytes": "200-300 random",
            "weight": 42,
            "store": "MemoryMapStore",
            "gc": "default thresholds",
        },
        "final_leaves": trie.count(),
        "store_entries": len(trie.store),
        "proof_bytes_mean": round(sum(map(len, blobs)) / len(blobs), 1),
        "target_inserts_per_second": 30_000,
        "results": rows,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| work | ops | ops/s | µs/op | sha256/op | sha256 floor µs/op | ratio to floor |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        floor = r["sha256_floor_seconds"] / r["ops"] * 1e6
        ratio = (
            "n/a (no hashing)"
            if r["ratio_to_sha256_floor"] is None
            else (f"{r['ratio_to_sha256_floor']:.1f}x")
        )
        lines.append(
            f"| {r['name']} | {r['ops']} | {r['ops_per_second']:,} | {r['us_per_op']:.1f} | "
            f"{r['sha256_calls_per_op']:.1f} | {floor:.1f} | {ratio} |"
        )
    return "\n".join(lines)


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write a benchmark's JSON report atomically (``bench/results/*.json``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--leaves", type=int, default=100_000)
    parser.add_argument("--extra", type=int, default=20_000)
    parser.add_argument("--commit-every", type=int, default=1_000)
    parser.add_argument("--proofs", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=20260)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    report = measure(args)
    print(markdown(report))
    headline = report["results"][1]["ops_per_second"]
    verdict = "meets" if headline >= report["target_inserts_per_second"] else "MISSES"
    print(f"\ninsert into {args.leaves}-leaf trie: {headline:,}/s ({verdict} the 30,000/s target)")
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
