"""Quiet blocks: the run loop's pass reads no snapshot when nothing can be due
(``LifecycleManager.tick``, docs/lifecycle.md "Scale"), and still misses no session.

Timeline (tests/lifecycle/support.py): session 1 = blocks 1..4, claim window 6..10 (claims sent
at 6..8), proof window 10..14; session 2 = blocks 5..8, claim window 10..14.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from relayminer.lifecycle.manager import LifecycleConfig, LifecycleManager
from relayminer.sessions.model import SessionSnapshot, SessionState
from relayminer.smst import journal
from relayminer.smst.nodes import digest_count
from tests.conftest import RedisBackend
from tests.lifecycle.support import APP2, SUP1, SUP2, World


class SnapshotReads:
    """Counts the snapshot reads (``get_by_states``) and id reads of a manager's store."""

    def __init__(self, manager: LifecycleManager) -> None:
        self.snapshots = 0
        self.ids = 0
        store = manager.store
        get_by_states, ids_by_states = store.get_by_states, store.ids_by_states

        async def counted_get(
            states: Sequence[SessionState], ids: Sequence[str] | None = None
        ) -> list[SessionSnapshot]:
            self.snapshots += 1
            return await get_by_states(states, ids)

        async def counted_ids(states: Sequence[SessionState]) -> list[str]:
            self.ids += 1
            return await ids_by_states(states)

        store.get_by_states = counted_get  # type: ignore[method-assign]
        store.ids_by_states = counted_ids  # type: ignore[method-assign]


async def test_blocks_with_nothing_due_read_no_snapshot(backend: RedisBackend) -> None:
    world = await one_supplier(backend)
    try:
        reads = SnapshotReads(world.managers[SUP1])
        sid = await world.relays(SUP1, 3)  # session 1
        await world.step()  # block 2: the first pass is a full one (nothing in memory)
        assert not world.reports[-1].quiet and reads.snapshots == 1
        await world.run_to(5)  # blocks 3..5: nothing due for session 1 before block 6
        assert [r.quiet for r in world.reports[1:]] == [True, True, True]
        assert reads.snapshots == 1  # nothing read in the quiet blocks
        await world.step()  # block 6: the claim window opens: a full pass claims
        assert not world.reports[-1].quiet and world.reports[-1].claimed == [sid]
        assert (await world.session(SUP1, sid)).state is SessionState.CLAIMED
        await world.step()  # block 7: the claim's inclusion is reconciled: a full pass
        assert not world.reports[-1].quiet
    finally:
        await world.close()


async def one_supplier(
    backend: RedisBackend, config: LifecycleConfig | None = None, *, hooked: bool = True
) -> World:
    """A world of SUP1 alone (every report is its own) whose passes are the run loop's; with
    ``hooked=False`` its worker does not tell the lifecycle of new sessions (as a worker of
    another process)."""
    world = await World.create(backend.client, lifecycle_config=config, quiet_blocks=hooked)
    for table in (world.managers, world.workers):
        del table[SUP2]
    world.quiet_blocks = True
    return world


async def test_a_session_created_by_the_worker_is_seen_at_once(backend: RedisBackend) -> None:
    world = await one_supplier(backend)
    try:
        reads = SnapshotReads(world.managers[SUP1])
        await world.relays(SUP1, 1, height=2)
        await world.run_to(3)
        assert [r.quiet for r in world.reports] == [False, True]  # the first pass, then quiet
        assert reads.snapshots == 1
        await world.relays(SUP1, 2, height=5)  # session 2's first relay: a new session
        await world.step()  # block 4: the worker told the lifecycle: a full pass
        assert reads.snapshots == 2
        assert world.reports[-1].quiet is False
        await world.step()  # block 5: quiet again
        assert world.reports[-1].quiet and reads.snapshots == 2
    finally:
        await world.close()


@pytest.mark.parametrize("late", [False, True], ids=["before-its-window", "in-its-window"])
async def test_a_session_written_by_another_process_is_claimed(
    backend: RedisBackend, late: bool
) -> None:
    """A session no worker of this process created (a separate ``relayminer worker``) is found
    when its period's claim window opens, or within ``quiet_recheck_blocks`` if it is written
    after that, and claimed in its window."""
    world = await one_supplier(backend, LifecycleConfig(quiet_recheck_blocks=2), hooked=False)
    try:
        reads = SnapshotReads(world.managers[SUP1])
        await world.run_to(2)
        if late:
            await world.run_to(6)  # session 1's claim window opened at 6 with nothing in it
        sid = await world.relays(SUP1, 4, height=3)  # session 1, claim window 6..10
        snapshots = reads.snapshots
        await world.step()  # the worker writes the session; the lifecycle is not told
        assert world.reports[-1].quiet and reads.snapshots == snapshots
        await world.run_to(8)  # the last block a claim can be sent at
        snapshot = await world.session(SUP1, sid)
        assert snapshot.state is SessionState.CLAIMED, snapshot
        assert snapshot.relay_count == 4
        claimed_at = next(r.height for r in world.reports if r.claimed == [sid])
        assert claimed_at == (8 if late else 6)  # the recheck (2 blocks) / the window opening
    finally:
        await world.close()


async def test_trees_are_built_ahead_in_the_block_before_the_claim_window(
    backend: RedisBackend,
) -> None:
    """A session mined in every block of its own: block 5 (its grace period over, its claim
    window not open) builds its tree; the claim at block 6 seals it without reading the journal
    again."""
    world = await one_supplier(backend)
    try:
        trees = world.managers[SUP1].trees
        sid = await world.relays(SUP1, 1, height=1)
        for block in (2, 3, 4):  # the chain starts at block 1
            await world.step()
            assert world.reports[-1].height == block and sid not in trees.cached_sessions
            await world.relays(SUP1, 1, height=1)  # mined in the next block
        await world.step()  # block 5: quiet, the grace period is over
        assert world.reports[-1].quiet and trees.cached_sessions == [sid]
        read = await _journal_reads_of_next_block(world)  # block 6: from the tree built ahead
        assert world.reports[-1].claimed == [sid] and read == []
        snap = await world.session(SUP1, sid)
        assert snap.claimed_root_hash is not None and digest_count(snap.claimed_root_hash) == 4
    finally:
        await world.close()


async def _journal_reads_of_next_block(world: World) -> list[str]:
    """The journal keys read by the next block's step (a claim from a tree built ahead reads
    none)."""
    read: list[str] = []
    journal_reads = journal.read_leaves_many

    async def counted(redis: Any, keys: Sequence[str], *args: Any) -> Any:
        read.extend(keys)
        return await journal_reads(redis, keys, *args)

    journal.read_leaves_many = counted  # type: ignore[assignment]
    try:
        await world.step()
    finally:
        journal.read_leaves_many = journal_reads  # type: ignore[assignment]
    return read


async def test_a_session_without_relays_for_a_whole_block_is_built_before_it_ends(
    backend: RedisBackend,
) -> None:
    """Relays mined before block 2's pass only (the chain starts at 1, the lifecycle's first
    pass is at 2): block 3 comes after a whole block without one and builds the tree, although
    the session runs until block 4. A session still receiving relays is not built meanwhile."""
    world = await one_supplier(backend)
    try:
        trees = world.managers[SUP1].trees
        sid = await world.relays(SUP1, 3, height=1)
        busy = await world.relays(SUP1, 1, app=APP2, height=1)
        await world.step()  # block 2
        for block in (3, 4):
            await world.relays(SUP1, 1, app=APP2, height=1)
            await world.step()
            assert world.reports[-1].height == block and world.reports[-1].quiet
            assert trees.cached_sessions == [sid], block
        await world.step()  # block 5: the busy session's grace period is over
        assert sorted(trees.cached_sessions) == sorted([sid, busy])
        assert await _journal_reads_of_next_block(world) == []  # block 6: both claimed
        assert sorted(world.reports[-1].claimed) == sorted([sid, busy])
        snaps = {s: await world.session(SUP1, s) for s in (sid, busy)}
        assert [digest_count(snaps[s].claimed_root_hash or b"") for s in (sid, busy)] == [3, 3]
    finally:
        await world.close()


async def test_relays_mined_after_a_tree_was_built_ahead_have_it_built_again(
    backend: RedisBackend,
) -> None:
    """Built ahead in block 4; two more relays mined in block 5 drop it; block 5 (grace period
    over) builds it again with them: the claim reads no journal, and its root has all 5."""
    world = await one_supplier(backend)
    try:
        trees = world.managers[SUP1].trees
        sid = await world.relays(SUP1, 3, height=1)
        await world.run_to(4)
        assert trees.cached_sessions == [sid]
        await world.relays(SUP1, 2, height=1)
        await world.step()  # block 5
        assert trees.cached_sessions == [sid]
        assert await _journal_reads_of_next_block(world) == []  # block 6
        assert world.reports[-1].claimed == [sid]
        snap = await world.session(SUP1, sid)
        assert snap.claimed_root_hash is not None and digest_count(snap.claimed_root_hash) == 5
    finally:
        await world.close()


async def test_a_relay_landing_after_the_tree_was_built_ahead_is_claimed(
    backend: RedisBackend,
) -> None:
    world = await one_supplier(backend)
    try:
        trees = world.managers[SUP1].trees
        sid = await world.relays(SUP1, 3, height=1)
        await world.run_to(5)
        assert trees.cached_sessions == [sid]
        await world.relays(SUP1, 2, height=1)  # late, mined before the claim
        await world.step()  # block 6
        assert world.reports[-1].claimed == [sid]
        snap = await world.session(SUP1, sid)
        assert snap.claimed_root_hash is not None and digest_count(snap.claimed_root_hash) == 5
        assert snap.relay_count == 5
    finally:
        await world.close()


async def test_what_the_worker_mined_is_forgotten_after_a_block(backend: RedisBackend) -> None:
    """The lifecycle remembers the sessions mined in the last block only (a replica mining
    thousands of sessions an hour keeps a bounded map), quiet passes or not."""
    world = await one_supplier(backend)
    try:
        manager = world.managers[SUP1]
        await world.run_to(2)
        manager.relays_mined([f"{i:064x}" for i in range(500)])
        await world.step()  # block 3: still within a block of the mining
        assert len(manager._mined_at) == 500
        await world.step()  # block 4
        assert manager._mined_at == {}
    finally:
        await world.close()
