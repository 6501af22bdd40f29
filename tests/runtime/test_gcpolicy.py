"""The GC freezer frees cyclic garbage instead of freezing it (``runtime/gcpolicy.py``)."""

from __future__ import annotations

import asyncio
import gc
import weakref

from relayminer.runtime.gcpolicy import freeze_survivors, release_frozen, run_gc_freezer


class Node:
    """Something that can sit in a reference cycle and be watched through a weakref."""

    other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """A two-node cycle nobody references any more (only the collector can free it)."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_young_cyclic_garbage_is_collected_before_a_freeze() -> None:
    try:
        gone = cycle()
        kept = Node()
        kept.other = kept
        watched = weakref.ref(kept)
        freeze_survivors()
        assert gone() is None  # collected, not frozen
        assert watched() is kept and gc.get_freeze_count() > 0  # a survivor, frozen
    finally:
        gc.unfreeze()


def test_a_cycle_dropped_after_its_freeze_is_freed_at_the_release() -> None:
    try:
        kept = Node()
        kept.other = kept
        watched = weakref.ref(kept)
        freeze_survivors()
        del kept  # garbage now, but frozen: no collection looks at it
        gc.collect()
        assert watched() is not None
        release_frozen()
        assert watched() is None and gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()


async def test_the_freezer_freezes_until_stopped_and_unfreezes_on_exit() -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_gc_freezer(stop, freeze_seconds=3600))
    for _ in range(5):
        await asyncio.sleep(0)  # its first freeze, then its wait
    assert gc.get_freeze_count() > 0
    stop.set()
    await task
    assert gc.get_freeze_count() == 0


async def test_the_freezer_releases_everything_every_release_interval() -> None:
    """With a release interval of 0 every round releases: nothing stays frozen, and a cycle
    dropped meanwhile is freed."""
    stop = asyncio.Event()
    gone = cycle()
    gc.freeze()  # as if frozen by an earlier round
    task = asyncio.create_task(run_gc_freezer(stop, freeze_seconds=3600, unfreeze_seconds=0))
    for _ in range(5):
        await asyncio.sleep(0)
    assert gc.get_freeze_count() == 0 and gone() is None
    stop.set()
    await task
