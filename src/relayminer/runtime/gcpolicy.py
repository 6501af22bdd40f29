"""Keep Python's cyclic garbage collector off the SMST nodes.

A miner holds hundreds of thousands of long-lived trie nodes; every full collection walks all
of them (100-250 ms each for two 100,000-leaf sessions), which cost ~20% of the relay worker's
throughput in ``bench/bench_worker.py``. :func:`run_gc_freezer` moves the tracked objects to the
permanent generation every ``freeze_seconds`` (``gc.freeze``), so collections only look at
what is new. Trie nodes hold no reference cycles, so freeing them still works (reference
counting).

Cycles are what the collector is for, and a frozen cycle is never collected. So:

- before each freeze, the young generations are collected (:func:`freeze_survivors`): what an
  asyncio task, a future or an exception with its traceback left as cyclic garbage in the last
  ``freeze_seconds`` is freed, not frozen. Cheap: only objects allocated since the last freeze
  are looked at;
- every ``unfreeze_seconds`` everything is handed back to the collector and a full collection
  runs at once (:func:`release_frozen`), for cycles that became garbage after they were frozen.
  Handing back alone did nothing: the next freeze came before any full collection.

Measured on the soak (``bench/bench_lifecycle.py``, 7 minutes): the RSS grew the same with and
without these two steps (99 → 122 MB), so the soak's growth is not frozen garbage; they stay
because a frozen cycle would otherwise never be freed.

This is a process-wide policy: the process entry points (``relayminer run`` / ``worker``) start
it; library classes never touch the collector.
"""

from __future__ import annotations

import asyncio
import gc
import time

from relayminer.runtime.aio import wait_or_stop


def freeze_survivors() -> None:
    """Collect the young generations, then freeze what survived (module docstring)."""
    gc.collect(1)
    gc.freeze()


def release_frozen() -> None:
    """Hand every frozen object back to the collector and collect in full (module docstring)."""
    gc.unfreeze()
    gc.collect()


async def run_gc_freezer(
    stop: asyncio.Event, freeze_seconds: float = 0.5, unfreeze_seconds: float = 600.0
) -> None:
    """Freeze periodically until ``stop``; release (unfreeze and collect) periodically, and
    unfreeze on exit."""
    last_release = time.monotonic()
    try:
        while True:
            if time.monotonic() - last_release >= unfreeze_seconds:
                release_frozen()
                last_release = time.monotonic()
            else:
                freeze_survivors()
            if await wait_or_stop(stop, freeze_seconds):
                return
    finally:
        gc.unfreeze()
