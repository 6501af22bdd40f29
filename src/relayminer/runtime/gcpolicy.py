"""Keep Python's cyclic garbage collector off the SMST nodes.

A miner holds hundreds of thousands of long-lived trie nodes; every full collection walks all
of them (100-250 ms each for two 100,000-leaf sessions), which cost ~20% of the relay worker's
throughput in ``bench/bench_worker.py``. :func:`run_gc_freezer` moves the tracked objects to the
permanent generation every ``freeze_seconds`` (``gc.freeze``), so collections only look at
what is new. Trie nodes hold no reference cycles, so freeing them still works (reference
counting); to bound what a frozen *cycle* could hold on to, everything is handed back to the
collector (``gc.unfreeze``) every ``unfreeze_seconds``.

This is a process-wide policy: the process entry points (``relayminer run`` / ``worker``) start
it; library classes never touch the collector.
"""

from __future__ import annotations

import asyncio
import gc
import time

from relayminer.runtime.aio import wait_or_stop


async def run_gc_freezer(
    stop: asyncio.Event, freeze_seconds: float = 0.5, unfreeze_seconds: float = 600.0
) -> None:
    """Freeze periodically until ``stop``; unfreeze periodically and on exit."""
    last_unfreeze = time.monotonic()
    try:
        while True:
            if time.monotonic() - last_unfreeze >= unfreeze_seconds:
                gc.unfreeze()
                last_unfreeze = time.monotonic()
            else:
                gc.freeze()
            if await wait_or_stop(stop, freeze_seconds):
                return
    finally:
        gc.unfreeze()
