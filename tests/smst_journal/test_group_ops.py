"""A claim or proof group's tree work at once: ``seal_many``, ``prove_group``, ``delete_many``
(journal layout) and :func:`seal_session_trees`, against the per-session operations."""

from __future__ import annotations

import random
from typing import Any

import pytest

from relayminer.errors import LeaseLostError
from relayminer.runtime.leases import Fence
from relayminer.runtime.tree_builder import TreeBuilder
from relayminer.smst import journal
from relayminer.smst.journal import (
    JournalCorruptError,
    SealResult,
    insert_leaves,
    journal_keys,
    read_leaves,
    read_leaves_many,
    seal_session_trees,
)
from relayminer.smst.journal_trees import JournalTreeMismatchError, JournalTrees
from relayminer.smst.proof import ClosestProof, verify_closest_proof
from relayminer.smst.redis_store import RedisSMSTStore, SMSTNotSealedError
from tests.conftest import RedisBackend
from tests.smst_journal.support import SUPPLIER, TTL, oracle_root, relay_leaves


async def _sessions(backend: RedisBackend, n: int, seed: int) -> dict[str, list[Any]]:
    rng = random.Random(seed)
    sessions = {f"s{i}": relay_leaves(rng, 5 + 7 * i) for i in range(n)}
    for sid, leaves in sessions.items():
        await insert_leaves(backend.client, SUPPLIER, sid, leaves, ttl_seconds=TTL)
    return sessions


async def test_read_leaves_many_matches_one_by_one_and_pages_long_journals(
    backend: RedisBackend,
) -> None:
    r = backend.client
    sessions = await _sessions(backend, 4, 51)
    keys = [journal_keys(SUPPLIER, sid).leaves for sid in sessions]
    # count=8: the longer journals need more than the first HSCAN page
    many = await read_leaves_many(r, keys, count=8)
    for key, got in zip(keys, many, strict=True):
        assert not isinstance(got, JournalCorruptError)
        assert sorted(got) == sorted(await read_leaves(r, key))
    assert await read_leaves_many(r, []) == []


async def test_seal_session_trees_seals_each_session_like_the_single_seal(
    backend: RedisBackend,
) -> None:
    r = backend.client
    sessions = await _sessions(backend, 5, 52)
    results = await seal_session_trees(r, SUPPLIER, [*sessions, "empty"], ttl_seconds=TTL)
    for sid, leaves in sessions.items():
        result = results[sid]
        assert isinstance(result, SealResult) and result.sealed_now
        assert result.root == oracle_root(leaves) and result.trie is not None
        assert await r.get(journal_keys(SUPPLIER, sid).root) == result.root
    empty = results["empty"]
    assert isinstance(empty, SealResult) and empty.count == 0
    # sealing again returns the first roots, and later inserts are refused
    again = await seal_session_trees(r, SUPPLIER, list(sessions), ttl_seconds=TTL)
    assert {sid: res.root for sid, res in again.items() if isinstance(res, SealResult)} == {
        sid: oracle_root(leaves) for sid, leaves in sessions.items()
    }
    assert not any(isinstance(res, SealResult) and res.sealed_now for res in again.values())
    late = relay_leaves(random.Random(0), 1)
    assert await insert_leaves(r, SUPPLIER, "s0", late, ttl_seconds=TTL) == -1


async def test_a_corrupt_journal_fails_alone(backend: RedisBackend) -> None:
    r = backend.client
    sessions = await _sessions(backend, 3, 53)
    await r.hset(journal_keys(SUPPLIER, "s1").leaves, b"short-field", b"\x05relay")
    results = await seal_session_trees(r, SUPPLIER, list(sessions), ttl_seconds=TTL)
    assert isinstance(results["s1"], JournalCorruptError)
    assert await r.get(journal_keys(SUPPLIER, "s1").root) is None  # never sealed
    for sid in ("s0", "s2"):
        result = results[sid]
        assert isinstance(result, SealResult) and result.root == oracle_root(sessions[sid])


async def test_a_journal_that_grew_after_the_read_is_resealed_with_every_leaf(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seal refuses a count that no longer matches the journal (a batch landed between the
    read and the seal): that session is read and sealed again, alone, with the late leaf."""
    r = backend.client
    sessions = await _sessions(backend, 3, 54)
    late = relay_leaves(random.Random(5), 1)
    real_read = journal.read_leaves_many

    async def read_then_insert(*args: Any, **kwargs: Any) -> Any:
        got = await real_read(*args, **kwargs)
        await insert_leaves(r, SUPPLIER, "s2", late, ttl_seconds=TTL)
        return got

    monkeypatch.setattr(journal, "read_leaves_many", read_then_insert)
    results = await seal_session_trees(r, SUPPLIER, list(sessions), ttl_seconds=TTL)
    grown = results["s2"]
    assert isinstance(grown, SealResult) and grown.root == oracle_root(sessions["s2"] + late)
    assert await r.get(journal_keys(SUPPLIER, "s2").root) == grown.root


async def test_journal_trees_group_ops_match_the_single_ones(backend: RedisBackend) -> None:
    r = backend.client
    sessions = await _sessions(backend, 4, 55)
    trees = JournalTrees(r, SUPPLIER, ttl_seconds=TTL)
    roots = await trees.seal_many(list(sessions))
    assert roots == {sid: oracle_root(leaves) for sid, leaves in sessions.items()}
    assert trees.cached_sessions == list(sessions)
    trees.forget("s3")  # rebuilt from its journal for the proof
    paths = {sid: bytes([i + 1]) * 32 for i, sid in enumerate(sessions)}
    proven = await trees.prove_group({**paths, "unsealed": bytes(32)})
    for sid in sessions:
        got = proven[sid]
        assert isinstance(got, tuple)
        root, proof = got
        assert isinstance(proof, ClosestProof)
        assert root == roots[sid] and verify_closest_proof(proof, root)
        assert (root, proof) == await trees.prove_closest(sid, paths[sid])
    assert isinstance(proven["unsealed"], SMSTNotSealedError)
    # a journal that lost a leaf after its seal no longer proves (and only that one)
    key = journal_keys(SUPPLIER, "s0").leaves
    await r.hdel(key, (await r.hkeys(key))[0])
    trees.forget("s0")
    again = await trees.prove_group(paths)
    assert isinstance(again["s0"], JournalTreeMismatchError)
    assert isinstance(again["s1"], tuple)
    await trees.delete_many(["s0", "s1"])
    assert await r.keys(f"ha:smst:{SUPPLIER}:s0:*") == []
    assert await r.keys(f"ha:smst:{SUPPLIER}:s1:*") == []
    assert await r.exists(journal_keys(SUPPLIER, "s2").root) == 1
    assert "s1" not in trees.cached_sessions


async def test_group_seal_and_delete_are_fenced(backend: RedisBackend) -> None:
    r = backend.client
    await _sessions(backend, 2, 56)
    lease = "ha:miner:claim:" + SUPPLIER
    await r.set(lease, "mine")
    trees = JournalTrees(r, SUPPLIER, ttl_seconds=TTL, fence=Fence(lease, "mine"))
    await trees.seal_many(["s0"])
    await r.set(lease, "someone-else")
    with pytest.raises(LeaseLostError):
        await trees.seal_many(["s1"])
    with pytest.raises(LeaseLostError):
        await trees.delete_many(["s0"])
    assert await r.get(journal_keys(SUPPLIER, "s1").root) is None
    assert await r.exists(journal_keys(SUPPLIER, "s0").leaves) == 1


@pytest.mark.parametrize("built_in", ["event loop", "worker processes"])
async def test_trees_built_ahead_are_sealed_as_the_journal_stands(
    backend: RedisBackend, built_in: str, process_tree_builder: TreeBuilder
) -> None:
    """``prebuild_many`` keeps the trees; ``seal_many`` seals them without a read, unless the
    journal grew meanwhile (then it is read and sealed with the late leaf). A corrupt journal
    is not built ahead; its claim reports it. The same whether trees are built in the event
    loop or in worker processes (``lifecycle.tree_build_processes``)."""
    r = backend.client
    sessions = await _sessions(backend, 3, 57)
    await r.hset(journal_keys(SUPPLIER, "s2").leaves, b"short-field", b"\x05relay")
    builder = process_tree_builder if built_in == "worker processes" else None
    trees = JournalTrees(r, SUPPLIER, ttl_seconds=TTL, builder=builder)
    assert await trees.prebuild_many(["s0", "s1", "s2"]) == ["s0", "s1"]
    assert await trees.prebuild_many(["s0", "s1"]) == []  # already built
    assert trees.cached_sessions == ["s0", "s1"]
    late = relay_leaves(random.Random(8), 1)
    await insert_leaves(r, SUPPLIER, "s1", late, ttl_seconds=TTL)
    roots = await trees.seal_many(["s0", "s1", "s2"])
    assert roots["s0"] == oracle_root(sessions["s0"])
    assert roots["s1"] == oracle_root(sessions["s1"] + late)
    assert isinstance(roots["s2"], JournalCorruptError)
    # a claim group none of whose trees was built ahead: built and sealed in the group
    more = await _sessions(backend, 5, 59)
    fresh = [sid for sid in more if sid not in ("s0", "s1", "s2")]
    trees.forget_all()
    roots = await trees.seal_many(fresh)
    assert roots == {sid: oracle_root(more[sid]) for sid in fresh}
    assert sorted(trees.cached_sessions) == sorted(fresh)


async def test_the_go_layout_builds_nothing_ahead_and_its_group_ops_are_per_session(
    backend: RedisBackend,
) -> None:
    r = backend.client
    rng = random.Random(58)
    store = RedisSMSTStore(r, SUPPLIER, ttl_seconds=TTL)
    leaves = {sid: relay_leaves(rng, 6) for sid in ("g0", "g1")}
    for sid, ls in leaves.items():
        await store.apply(sid, ls)
    assert not store.builds_ahead and await store.prebuild_many(list(leaves)) == []
    roots = await store.seal_many(list(leaves))
    assert roots == {sid: oracle_root(ls) for sid, ls in leaves.items()}
    proven = await store.prove_group({"g0": bytes(32), "nope": bytes(32)})
    got = proven["g0"]
    assert isinstance(got, tuple) and verify_closest_proof(got[1], roots["g0"])
    assert isinstance(proven["nope"], SMSTNotSealedError)
    await store.delete_many(list(leaves))
    assert await r.keys(f"ha:smst:{SUPPLIER}:g*") == []
