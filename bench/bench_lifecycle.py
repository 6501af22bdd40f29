"""Lifecycle timing under load: the scale run and the soak of issue "Scale" (docs/lifecycle.md).

    .venv/bin/python bench/bench_lifecycle.py [--run NAME|all] [--quick]   (NAME: below)

Runs:

- ``scale`` (``bench/lifecycle_scale.py``): the issue's scale target: one replica owning 1,000
  suppliers, each with 10 sessions of 200 relays, on 1 s blocks. The 2,000,000 relays are mined
  before the chain starts, so the run measures the lifecycle alone; ``scale300`` and
  ``scale100``: the same with 300 and 100 suppliers (what one process does keep in its windows);
  ``scale10s`` and ``scale20s``: the 1,000 suppliers on 10 s and 20 s blocks (real chains' are
  30 s or more; not part of ``all``: about 7 and 10 minutes);
- ``demo1000``: ``relayminer demo --suppliers 1000 --sessions 2 --relays-per-second 1000``:
  mining and lifecycle of 1,000 suppliers together, relays arriving while sessions fall due;
- ``soak``: the compressed-time soak, 10 suppliers, 0.25 s blocks, 2,000 relays/s, 300 session
  periods (about 5 minutes); ``soak10``: 375 periods; ``soak15``: 900 periods (about 15
  minutes, whether the RSS levels off; not part of ``all``).

The demo runs (one replica owning every supplier, the simulated chain, the load generator, all in
one process, on a fresh embedded server) report what an operator sizing a replica needs:

- sessions that did not end proved / probabilistic_proved (the target is 0), proofs lost after
  acceptance (sessions marked proved whose claim the chain expired);
- the p50 / p99 / max delay, in blocks, from a claim or proof window opening to its broadcast
  (the target: p99 <= 2 blocks);
- txs that failed at execution, redundant claims (``claims_updated``: a claim sent again after
  its first one executed);
- the process's CPU seconds and its share of the wall time (the machine is noisy: the share is
  the figure to compare), and RSS after warm-up, halfway, at the end and at its maximum.

``--quick`` shrinks every run (for a smoke check). Prints the results and writes
``bench/results/lifecycle.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lifecycle_scale import proofs_expired_after_acceptance, scale_run
from relayminer.cli.startup import embedded_server, open_redis
from relayminer.demo import DemoOptions, run_demo

RESULTS = Path(__file__).resolve().parent / "results" / "lifecycle.json"

#: the preloaded scale runs (``bench/lifecycle_scale.py``): suppliers, sessions per supplier,
#: relays per session, block time
SCALE: dict[str, tuple[int, int, int, float]] = {
    "scale": (1000, 10, 200, 1.0),
    "scale300": (300, 10, 200, 1.0),
    "scale100": (100, 10, 200, 1.0),
    "scale10s": (1000, 10, 200, 10.0),
    "scale20s": (1000, 10, 200, 20.0),
}
QUICK_SCALE: dict[str, tuple[int, int, int, float]] = {"scale": (100, 10, 50, 1.0)}

RUNS: dict[str, DemoOptions] = {
    "demo1000": DemoOptions(
        suppliers=1000, sessions=2, block_time_seconds=1.0, relays_per_second=1000
    ),
    "soak": DemoOptions(
        suppliers=10, sessions=300, block_time_seconds=0.25, relays_per_second=2000
    ),
    "soak10": DemoOptions(
        suppliers=10, sessions=375, block_time_seconds=0.25, relays_per_second=2000
    ),
    "soak15": DemoOptions(
        suppliers=10, sessions=900, block_time_seconds=0.25, relays_per_second=2000
    ),
}
#: runs ``all`` leaves out (each is a quarter of an hour)
LONG = {"soak15", "scale10s", "scale20s"}
QUICK: dict[str, DemoOptions] = {
    "demo1000": DemoOptions(
        suppliers=100, sessions=2, block_time_seconds=1.0, relays_per_second=500
    ),
    "soak": DemoOptions(suppliers=10, sessions=20, block_time_seconds=0.25, relays_per_second=2000),
    "soak10": DemoOptions(
        suppliers=10, sessions=30, block_time_seconds=0.25, relays_per_second=2000
    ),
    "soak15": DemoOptions(
        suppliers=10, sessions=40, block_time_seconds=0.25, relays_per_second=2000
    ),
}


async def one_run(options: DemoOptions) -> dict[str, Any]:
    server = embedded_server()
    redis = open_redis(server.url, max_connections=64)
    try:
        started = time.monotonic()
        lost_before = proofs_expired_after_acceptance()
        summary = await run_demo(redis, options)
        lost = proofs_expired_after_acceptance() - lost_before
        d = summary.as_dict()
    finally:
        await redis.aclose()
        server.stop()
    chain = d["chain"]
    states = d["sessions_by_state"]
    return {
        "suppliers": options.suppliers,
        "session_periods": options.sessions,
        "block_time_s": options.block_time_seconds,
        "relays_per_second": options.relays_per_second,
        "ok": d["ok"],
        "sessions": d["sessions"],
        "failed_sessions": d["sessions_failed"],
        "states": states,
        "proofs_lost_after_acceptance": lost,
        "claims_expired": chain["claims_expired"],
        "relays_published": d["relays_published"],
        "relays_mined": d["relays_mined"],
        "submit_delay_blocks": d["submit_delay_blocks"],
        "txs_failed_at_execution": d["txs_failed_at_execution"],
        "claims_updated": chain["claims_updated"],
        "slashed_upokt": chain["slashed_upokt"],
        "cpu_seconds": d["cpu_seconds"],
        "cpu_share": d["cpu_share"],
        "rss_mb": d["rss_mb"],
        "wall_seconds": round(time.monotonic() - started, 1),
        "problems": d["problems"],
    }


def phase_delays(r: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """The claim and the proof delay statistics of a run (empty when none was sent)."""
    delays = r["submit_delay_blocks"]
    return delays.get("claim", {}), delays.get("proof", {})


def row(name: str, r: dict[str, Any]) -> str:
    claim, proof = phase_delays(r)
    return (
        f"| {name} | {r['suppliers']} x {r['session_periods']} periods, {r['block_time_s']} s "
        f"blocks, {r['relays_per_second']:.0f} relays/s | {r['sessions']} | "
        f"{r['failed_sessions']} | {r['proofs_lost_after_acceptance']} | "
        f"{claim.get('p99', '-')} / {claim.get('max', '-')} | "
        f"{proof.get('p99', '-')} / {proof.get('max', '-')} | "
        f"{r['txs_failed_at_execution']} | {r['claims_updated']} | "
        f"{r['cpu_seconds']} s ({r['cpu_share']:.2f} of wall) | "
        f"{r['rss_mb'].get('after_warmup')} -> {r['rss_mb'].get('half')} -> "
        f"{r['rss_mb'].get('end')} MB |"
    )


def scale_row(name: str, r: dict[str, Any]) -> str:
    claim, proof = phase_delays(r)
    return (
        f"{name}: {r['suppliers']} suppliers x {r['sessions_per_supplier']} sessions x "
        f"{r['relays_per_session']} relays (mined before the start), {r['block_time_s']} s "
        f"blocks: {r['failed_sessions']} of {r['sessions']} sessions failed, "
        f"{r['proofs_lost_after_acceptance']} proofs lost after acceptance; claim delay "
        f"p99/max {claim.get('p99', '-')}/{claim.get('max', '-')} ({claim.get('count', 0)} sent), "
        f"proof delay p99/max {proof.get('p99', '-')}/{proof.get('max', '-')}; CPU "
        f"{r['cpu_seconds']} s ({r['cpu_share']:.2f} of wall, {r['cpu_ms_per_session']} ms per "
        f"session)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", choices=[*SCALE, *RUNS, "all"], default="all")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    table = QUICK if args.quick else RUNS
    scale = QUICK_SCALE if args.quick else SCALE
    names = [n for n in [*scale, *table] if n not in LONG] if args.run == "all" else [args.run]
    if any(n not in scale and n not in table for n in names):
        quick = ", ".join([*scale, *table])
        parser.error(f"--run {args.run} has no --quick version (those: {quick})")
    results: dict[str, dict[str, Any]] = {}
    for name in [n for n in names if n in scale]:
        results[name] = asyncio.run(scale_run(*scale[name]))
        print(scale_row(name, results[name]), flush=True)
    names = [n for n in names if n not in scale]
    print(
        "| run | load | sessions | failed | proofs lost | claim delay p99 / max (blocks) | "
        "proof delay p99 / max | txs failed at execution | redundant claims | CPU | RSS |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        results[name] = asyncio.run(one_run(table[name]))
        print(row(name, results[name]), flush=True)
    # Runs are kept per name (a single ``--run`` updates its own entry, stamped with its time).
    RESULTS.parent.mkdir(exist_ok=True)
    kept = json.loads(RESULTS.read_text()).get("runs", {}) if RESULTS.exists() else {}
    when = datetime.now(UTC).isoformat(timespec="seconds")
    for r in results.values():
        r.update(when=when, quick=args.quick)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "python": sys.version.split()[0],
                "runs": {**kept, **results},
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
