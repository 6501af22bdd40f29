"""Tree builds in worker processes (``lifecycle.tree_build_processes``): the same trees as the
event loop builds, errors that name the bad leaf set, the deadline, and a worker process killed
mid-run (no tree lost)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import signal

import pytest

from relayminer.runtime.tree_builder import TreeBuilder, TreeBuildError, nodes_of_all
from relayminer.smst.bulk import bulk_build, bulk_nodes
from relayminer.smst.proof import verify_closest_proof

Leaf = tuple[bytes, bytes, int]


def leaf_set(n: int, seed: int) -> list[Leaf]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        value = rng.randbytes(40)
        out.append((hashlib.sha256(value).digest(), value, rng.randrange(1, 100)))
    return out


SETS = [leaf_set(n, seed) for seed, n in enumerate((0, 1, 37, 200, 3))]


async def test_worker_processes_build_the_trees_the_event_loop_builds(
    process_tree_builder: TreeBuilder,
) -> None:
    in_loop = await TreeBuilder(0).build_many(SETS)
    # five sets dealt over two processes: each comes back in its place
    in_processes = await process_tree_builder.build_many(SETS)
    assert len(in_loop) == len(in_processes) == len(SETS)
    for leaves, a, b in zip(SETS, in_loop, in_processes, strict=True):
        expected = bulk_build(leaves)
        assert a.root() == b.root() == expected.root()
        assert a.count() == b.count() == len(leaves)
        assert sorted(b.store.items()) == sorted(expected.store.items())  # node bytes too
        if leaves:
            path = hashlib.sha256(b"any path").digest()
            proof = b.prove_closest(path)
            assert proof == expected.prove_closest(path)
            assert verify_closest_proof(proof, b.root())
    assert await process_tree_builder.build_many([]) == []


async def test_a_bad_leaf_set_is_named_whichever_builds_it(
    process_tree_builder: TreeBuilder,
) -> None:
    good = leaf_set(5, 9)
    twice = [*good, (good[0][0], b"another value", 1)]  # one key, two values
    for builder in (TreeBuilder(0), process_tree_builder):
        with pytest.raises(TreeBuildError, match=r"SMSTDuplicateKeyError.*given twice"):
            await builder.build_many([good, twice])
    assert nodes_of_all([good])[0] == bulk_nodes(good)


async def test_no_tree_starts_after_the_deadline(process_tree_builder: TreeBuilder) -> None:
    now = asyncio.get_running_loop().time()
    for builder in (TreeBuilder(0), process_tree_builder):
        assert await builder.build_many(SETS, deadline=now) == []
        built = await builder.build_many(SETS[:2], deadline=now + 3600)
        assert [t.count() for t in built] == [0, 1]


async def test_a_killed_worker_process_loses_no_tree() -> None:
    """The pool of a dead worker process is broken: that call builds in the event loop, and
    the next one starts a new process."""
    builder = TreeBuilder(1)
    try:
        assert builder.worker_pids() == [] and not builder.in_loop  # started on first use
        await builder.build_many(SETS[:1])
        [pid] = builder.worker_pids()
        os.kill(pid, signal.SIGKILL)
        built = await builder.build_many(SETS)
        assert [t.root() for t in built] == [bulk_build(s).root() for s in SETS]
        assert builder.pools_broken == 1
        await builder.build_many(SETS[:1])
        [new_pid] = builder.worker_pids()
        assert new_pid != pid and builder.pools_broken == 1
    finally:
        builder.close()
        builder.close()  # twice: nothing left to stop
    assert builder.worker_pids() == []


def test_processes_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="processes must be >= 0"):
        TreeBuilder(-1)
    assert TreeBuilder(0).in_loop


async def test_a_claims_trees_are_built_in_one_go_and_trees_built_ahead_yield() -> None:
    """In the event loop: a claim's group is built without letting other tasks run (its pass
    finishes first); trees built ahead yield after each tree."""
    builder = TreeBuilder(0)
    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other_task())
    try:
        await asyncio.sleep(0)
        before = turns
        assert len(await builder.build_many(SETS)) == len(SETS)
        assert turns == before
        assert len(await builder.build_many(SETS, background=True)) == len(SETS)
        assert turns >= before + len(SETS) - 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
