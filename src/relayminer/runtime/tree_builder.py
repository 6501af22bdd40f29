"""Tree builds off the event loop: the lifecycle's bulk builds in worker processes.

A claim window is where a replica is busiest: every owned session's tree must be built
(:func:`~relayminer.smst.bulk.bulk_nodes`, about 1.5 ms for 200 leaves, all of it pure Python
CPU) and its claim sent, within a few blocks. Built on the event loop, each tree holds up every
other supplier's pass for that long. :class:`TreeBuilder` with ``processes >= 1`` runs the builds
in a process pool instead; the loop only pickles the leaves out and imports the nodes back,
and spends the rest of the time on claims, proofs and relays. Measured
(``bench/bench_tree_builder.py``): 0.77 ms of this process's CPU per 200-leaf tree against
2.07 ms, and a 100k-leaf build stalls the loop 0.21 s instead of 1.55 s; each build takes
1.5-1.75x longer in wall time (the pipe both ways), so it pays only with a core to spare.
docs/lifecycle.md, "Tree builds in worker processes".

- The nodes come back as plain bytes (:class:`~relayminer.smst.bulk.BulkNodes`): the tree is
  byte-identical to an in-process build, and is kept, proved and dropped by the lifecycle as
  before. A worker process holds no state.
- A worker process that dies (killed, out of memory) breaks the pool: that call builds in the
  event loop instead, and the next call starts a new pool. Nothing is lost; a build is
  deterministic and can always be done again.
- ``processes=0`` (the default) builds in the event loop: a claim's trees in one go, trees
  built ahead one at a time, yielding between them (:meth:`TreeBuilder.build_many`).

>>> import asyncio, hashlib
>>> leaves = [(hashlib.sha256(b"a").digest(), b"value-a", 1)]
>>> [trie] = asyncio.run(TreeBuilder(0).build_many([leaves]))
>>> trie.count()
1
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from relayminer.smst.bulk import BulkNodes, Leaf, bulk_nodes, import_nodes
from relayminer.smst.nodes import SMSTError
from relayminer.smst.trie import SparseMerkleSumTrie

__all__ = ["TreeBuildError", "TreeBuilder", "nodes_of_all"]

log = logging.getLogger(__name__)


class TreeBuildError(SMSTError):
    """A leaf set could not be built into a tree (its message says why)."""


def nodes_of_all(leaf_sets: list[list[Leaf]]) -> list[BulkNodes | str]:
    """What a worker process runs: the nodes of each leaf set, or the message of the error that
    set raised (an exception with its own constructor does not always survive pickling)."""
    out: list[BulkNodes | str] = []
    for leaves in leaf_sets:
        try:
            out.append(bulk_nodes(leaves))
        except (SMSTError, TypeError, ValueError) as err:
            out.append(f"{type(err).__name__}: {err}")
    return out


class TreeBuilder:
    """Builds session trees from their leaves, in ``processes`` worker processes (0: in the
    event loop). One per replica, shared by every owned supplier; :meth:`close` at the end."""

    def __init__(self, processes: int = 0) -> None:
        if processes < 0:
            raise ValueError(f"processes must be >= 0, got {processes}")
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        #: pools replaced after a worker process died (the status view and tests read it)
        self.pools_broken = 0

    @property
    def in_loop(self) -> bool:
        return self.processes == 0

    async def build_many(
        self,
        leaf_sets: Sequence[list[Leaf]],
        *,
        deadline: float | None = None,
        background: bool = False,
    ) -> list[SparseMerkleSumTrie]:
        """The tree of each leaf set, in order. Raises :class:`TreeBuildError` for a set that
        is not a valid leaf set.

        In the event loop, a claim's trees (``background=False``) are built in one go: the
        pass that needs them finishes as early as it can, instead of every pass in flight
        finishing late together. Trees built ahead (``background=True``) yield to the loop
        after each tree, and none is started after ``deadline`` (event loop time): the trees
        built before it are returned. In worker processes, nothing is started after
        ``deadline``; once started, every set is built."""
        loop = asyncio.get_running_loop()
        if not leaf_sets or (deadline is not None and loop.time() >= deadline):
            return []
        if self.in_loop:
            return await self._in_loop(leaf_sets, deadline, background)
        # One task per process, the sets dealt round-robin (set i goes to task i % processes).
        n = min(self.processes, len(leaf_sets))
        pool = self._executor()
        try:
            replies = await asyncio.gather(
                *(loop.run_in_executor(pool, nodes_of_all, list(leaf_sets[i::n])) for i in range(n))
            )
        except BrokenProcessPool:
            self._replace(pool)
            return await self._in_loop(leaf_sets, None, background)
        return [_trie(replies[i % n][i // n]) for i in range(len(leaf_sets))]

    async def _in_loop(
        self, leaf_sets: Sequence[list[Leaf]], deadline: float | None, background: bool
    ) -> list[SparseMerkleSumTrie]:
        loop = asyncio.get_running_loop()
        out: list[SparseMerkleSumTrie] = []
        for leaves in leaf_sets:
            if deadline is not None and loop.time() >= deadline:
                break
            out.append(_trie(nodes_of_all([leaves])[0]))
            if background:
                await asyncio.sleep(0)  # one tree at a time: the other suppliers' passes go on
        return out

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a fork of a process running an event loop and threads is not safe
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.processes, mp_context=context)
        return self._pool

    def _replace(self, pool: ProcessPoolExecutor) -> None:
        """A worker process died: drop its pool (the next call starts a new one)."""
        log.warning(
            "a tree build process died; building in the event loop, a new pool starts next",
            extra={"processes": self.processes},
        )
        if self._pool is pool:
            self._pool = None
            self.pools_broken += 1
        pool.shutdown(wait=False, cancel_futures=True)

    def worker_pids(self) -> list[int]:
        """The process ids of the running worker processes (none before the first build; read
        from the executor's process table, which ``concurrent.futures`` does not export)."""
        pool = self._pool
        processes = getattr(pool, "_processes", None) or {}
        return sorted(p.pid for p in processes.values() if p.pid is not None)

    def close(self) -> None:
        """Stop the worker processes (a build in flight is abandoned; the loop is not held)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _trie(nodes: BulkNodes | str) -> SparseMerkleSumTrie:
    if isinstance(nodes, str):
        raise TreeBuildError(f"tree build failed: {nodes}")
    return import_nodes(nodes)
