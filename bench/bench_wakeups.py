"""The replica's stream watcher over idle streams: its CPU per second of wall time.

    .venv/bin/python bench/bench_wakeups.py [--streams 100 1000] [--seconds 5]

Every owned supplier's idle relay worker waits on the replica's one ``StreamWakeups`` watcher
(``pipeline/wakeups.py``), which repeats a single ``XREAD BLOCK`` over all of their streams.
When nothing arrives, each ``XREAD`` returns once its block time is over, and its CPU grows
with the number of streams it names. The watcher now blocks longer over more streams
(``block_ms``: 100 ms more per 100 streams, at most 1 s); the baseline, in the same run, is the
former fixed 100 ms block. Measured on a fresh embedded server: the process's CPU seconds over
``--seconds`` of watching, per second. Writes ``bench/results/wakeups.json``.
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

from lifecycle_scale import cpu_seconds
from relayminer.cli.startup import embedded_server, open_redis
from relayminer.pipeline.wakeups import StreamWakeups

RESULTS = Path(__file__).resolve().parent / "results" / "wakeups.json"


class FixedBlockWakeups(StreamWakeups):
    """The baseline: the watcher as it was, blocking ``watch_ms`` whatever its streams."""

    def block_ms(self, streams: int) -> int:
        return self.watch_ms


async def watch(url: str, streams: int, seconds: float, *, fixed: bool) -> dict[str, float]:
    """CPU per wall second of a watcher over ``streams`` idle streams (``fixed``: the former
    100 ms block whatever their number)."""
    redis = open_redis(url, max_connections=4)
    wakeups = (FixedBlockWakeups if fixed else StreamWakeups)(redis)
    stop = asyncio.Event()
    names = [f"ha:relays:pokt1benchsupplier{i:05d}" for i in range(streams)]
    for name in names:
        wakeups.prepare(name)
    waits = [asyncio.create_task(wakeups.wait(name, 3600)) for name in names]
    watcher = asyncio.create_task(wakeups.run(stop))
    try:
        await asyncio.gather(*waits)  # the first watch wakes each worker to read on its own
        for name in names:  # then every worker waits again, on streams that stay idle
            wakeups.prepare(name)
        waits = [asyncio.create_task(wakeups.wait(name, 3600)) for name in names]
        await asyncio.sleep(0.5)  # the watch settles on the new waiters
        cpu0, wall0 = cpu_seconds(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
        block_ms = wakeups.block_ms(streams)
    finally:
        stop.set()
        await watcher
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
        await redis.aclose()
    return {"cpu_per_second": round(cpu / wall, 4), "block_ms": block_ms}


async def run(streams: list[int], seconds: float) -> dict[str, Any]:
    server = embedded_server()
    try:
        results: dict[str, Any] = {}
        for n in streams:
            before = await watch(server.url, n, seconds, fixed=True)
            now = await watch(server.url, n, seconds, fixed=False)
            base = before["cpu_per_second"]
            ratio = now["cpu_per_second"] / base if base else 0.0
            results[str(n)] = {
                "fixed_100ms": before,
                "scaled": now,
                "ratio": round(ratio, 3),
            }
            print(
                f"{n} idle streams: {now['cpu_per_second']:.2%} of a core "
                f"(block {now['block_ms']} ms) against {before['cpu_per_second']:.2%} with a "
                f"fixed 100 ms block: {ratio:.2f}x",
                flush=True,
            )
        return results
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    results = asyncio.run(run(args.streams, args.seconds))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "python": sys.version.split()[0],
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "seconds": args.seconds,
                "runs": results,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
