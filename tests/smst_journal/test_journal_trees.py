"""JournalTrees: the lifecycle's journal-layout trees (seal, cache bound, rebuild, delete)."""

from __future__ import annotations

import random

import pytest

from relayminer.errors import LeaseLostError
from relayminer.runtime.leases import Fence
from relayminer.smst.journal import insert_leaves
from relayminer.smst.journal_trees import JournalTreeMismatchError, JournalTrees
from relayminer.smst.proof import verify_closest_proof
from relayminer.smst.redis_store import SMSTNotSealedError
from tests.conftest import RedisBackend
from tests.smst_journal.support import SUPPLIER, TTL, oracle_root, relay_leaves


async def test_cache_is_bounded_by_leaves_and_rebuilds_what_it_dropped(
    backend: RedisBackend,
) -> None:
    r = backend.client
    rng = random.Random(41)
    sessions = {f"s{i}": relay_leaves(rng, 30) for i in range(3)}
    for sid, leaves in sessions.items():
        await insert_leaves(r, SUPPLIER, sid, leaves, ttl_seconds=TTL)
    trees = JournalTrees(r, SUPPLIER, ttl_seconds=TTL, max_cached_leaves=70)
    roots = {sid: await trees.seal(sid) for sid in sessions}
    assert roots == {sid: oracle_root(leaves) for sid, leaves in sessions.items()}
    assert trees.cached_sessions == ["s1", "s2"]  # 90 leaves > 70: the oldest went
    paths = [bytes([i]) * 32 for i in range(4)]
    root, proofs = await trees.prove_closest_many("s0", paths)  # rebuilt from the journal
    assert root == roots["s0"] and all(verify_closest_proof(p, root) for p in proofs)
    assert trees.cached_sessions == ["s2", "s0"]
    trees.forget_all()
    assert trees.cached_sessions == []
    tiny = JournalTrees(r, SUPPLIER, ttl_seconds=TTL, max_cached_leaves=10)
    assert await tiny.seal("s1") == roots["s1"] and tiny.cached_sessions == []  # too big


async def test_unsealed_and_changed_journals_are_never_proved(backend: RedisBackend) -> None:
    r = backend.client
    rng = random.Random(42)
    await insert_leaves(r, SUPPLIER, "s", relay_leaves(rng, 20), ttl_seconds=TTL)
    trees = JournalTrees(r, SUPPLIER, ttl_seconds=TTL)
    with pytest.raises(SMSTNotSealedError):
        await trees.prove_closest("s", bytes(32))
    await trees.seal("s")
    field = (await r.hkeys(trees.keys.smst_leaves_key(SUPPLIER, "s")))[0]
    await r.hdel(trees.keys.smst_leaves_key(SUPPLIER, "s"), field)
    trees.forget("s")
    with pytest.raises(JournalTreeMismatchError):
        await trees.prove_closest("s", bytes(32))


async def test_delete_and_seal_are_fenced(backend: RedisBackend) -> None:
    r = backend.client
    rng = random.Random(43)
    await insert_leaves(r, SUPPLIER, "s", relay_leaves(rng, 5), ttl_seconds=TTL)
    lease = "ha:miner:claim:" + SUPPLIER
    await r.set(lease, "mine")
    trees = JournalTrees(r, SUPPLIER, ttl_seconds=TTL, fence=Fence(lease, "mine"))
    await trees.seal("s")
    await r.set(lease, "someone-else")
    with pytest.raises(LeaseLostError):
        await trees.delete("s")
    with pytest.raises(LeaseLostError):
        await trees.seal("s2")
    assert await r.exists(trees.keys.smst_leaves_key(SUPPLIER, "s")) == 1
    await r.set(lease, "mine")
    await trees.delete("s")
    assert await r.keys(f"ha:smst:{SUPPLIER}:s:*") == []
