"""Reading a journal with HSCAN and bulk-building the session's tree from it, on both backends."""

from __future__ import annotations

import random

import pytest

from relayminer.keys import Namespace
from relayminer.smst.journal import (
    JournalCorruptError,
    build_session_tree,
    insert_leaves,
    journal_keys,
    read_leaves,
    scan_leaves,
)
from relayminer.smst.nodes import PLACEHOLDER
from relayminer.smst.proof import verify_closest_proof
from tests.conftest import RedisBackend
from tests.smst_journal.support import SESSION, SUPPLIER, TTL, oracle_root, relay_leaves

KEYS = journal_keys(SUPPLIER, SESSION)


async def test_scan_reads_everything_in_several_replies(backend: RedisBackend) -> None:
    r = backend.client
    leaves = relay_leaves(random.Random(1), 700)
    for i in range(0, 700, 100):
        await insert_leaves(r, SUPPLIER, SESSION, leaves[i : i + 100], ttl_seconds=TTL)
    replies = [batch async for batch in scan_leaves(r, KEYS.leaves, count=50)]
    assert len(replies) > 1
    assert {field for batch in replies for field, _ in batch} == {leaf[0] for leaf in leaves}
    assert sorted(await read_leaves(r, KEYS.leaves, count=50)) == sorted(leaves)


async def test_built_tree_matches_incremental_inserts_and_proves(backend: RedisBackend) -> None:
    r = backend.client
    rng = random.Random(2)
    leaves = relay_leaves(rng, 500, weights=[1, 200, 2**40])  # one- and multi-byte weights
    for i in range(0, 500, 64):
        await insert_leaves(r, SUPPLIER, SESSION, leaves[i : i + 64], ttl_seconds=TTL)
    trie = await build_session_tree(r, SUPPLIER, SESSION)
    assert trie.root() == oracle_root(leaves)
    assert trie.count() == 500
    for _ in range(5):
        assert verify_closest_proof(trie.prove_closest(rng.randbytes(32)), trie.root())
    # Rebuilt (another replica, after a restart): the same root and the same proof bytes.
    again = await build_session_tree(r, SUPPLIER, SESSION)
    path = rng.randbytes(32)
    assert again.prove_closest(path).compact().to_bytes() == (
        trie.prove_closest(path).compact().to_bytes()
    )


async def test_session_without_journal_builds_the_empty_tree(backend: RedisBackend) -> None:
    trie = await build_session_tree(backend.client, SUPPLIER, "nothing-here")
    assert trie.root() == PLACEHOLDER and trie.count() == 0


async def test_namespace_is_honoured(backend: RedisBackend) -> None:
    ns = Namespace(base_prefix="prod")
    leaves = relay_leaves(random.Random(3), 5)
    await insert_leaves(backend.client, SUPPLIER, SESSION, leaves, ttl_seconds=TTL, namespace=ns)
    assert await backend.client.exists("prod:smst:pokt1supplier:session-1:leaves") == 1
    assert (await build_session_tree(backend.client, SUPPLIER, SESSION, ns)).count() == 5
    assert (await build_session_tree(backend.client, SUPPLIER, SESSION)).count() == 0


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        (bytes(31), b"\x01relay", "field is 31 bytes"),
        (bytes(32), b"", "empty value"),
        (bytes(32), b"\x05", "no relay bytes"),
        (bytes(32), b"\xf0" + bytes(40), "not a gob uint"),
    ],
)
async def test_corrupt_entry_is_named_not_skipped(
    backend: RedisBackend, field: bytes, value: bytes, reason: str
) -> None:
    r = backend.client
    await insert_leaves(r, SUPPLIER, SESSION, relay_leaves(random.Random(4), 3), ttl_seconds=TTL)
    await r.hset(KEYS.leaves, field, value)
    with pytest.raises(JournalCorruptError, match=reason) as err:
        await build_session_tree(r, SUPPLIER, SESSION)
    assert err.value.key == KEYS.leaves and err.value.field == field
