"""The journal's insert-if-absent Lua (standalone script and as an embedded fragment), on both
backends."""

from __future__ import annotations

import asyncio
import random

import pytest
from redis.exceptions import ResponseError

from relayminer.smst.journal import (
    JOURNAL_INSERT,
    JOURNAL_LUA,
    encode_leaf_value,
    insert_args,
    insert_leaves,
    journal_keys,
    read_leaves,
)
from tests.conftest import RedisBackend
from tests.smst_journal.support import SESSION, SUPPLIER, TTL, relay_leaves

KEYS = journal_keys(SUPPLIER, SESSION)


async def test_counts_new_leaves_and_keeps_the_first_write(backend: RedisBackend) -> None:
    r = backend.client
    leaves = relay_leaves(random.Random(1), 30)
    assert await insert_leaves(r, SUPPLIER, SESSION, leaves[:20], ttl_seconds=TTL) == 20
    # A redelivered batch overlapping the first: only the 10 unseen count.
    assert await insert_leaves(r, SUPPLIER, SESSION, leaves[10:], ttl_seconds=TTL) == 10
    assert await r.hlen(KEYS.leaves) == 30
    # The same relay hash with another weight counts 0 and changes nothing.
    key, value, weight = leaves[0]
    assert (
        await insert_leaves(r, SUPPLIER, SESSION, [(key, value, weight + 1)], ttl_seconds=TTL) == 0
    )
    assert await r.hget(KEYS.leaves, key) == encode_leaf_value(weight, value)
    assert sorted(await read_leaves(r, KEYS.leaves)) == sorted(leaves)
    assert 0 < await r.ttl(KEYS.leaves) <= TTL


async def test_a_hash_twice_in_one_call_counts_once(backend: RedisBackend) -> None:
    leaves = relay_leaves(random.Random(2), 3)
    batch = [leaves[0], leaves[1], leaves[0], leaves[2], leaves[1]]
    assert await insert_leaves(backend.client, SUPPLIER, SESSION, batch, ttl_seconds=TTL) == 3


async def test_an_empty_call_writes_nothing(backend: RedisBackend) -> None:
    assert await insert_leaves(backend.client, SUPPLIER, SESSION, [], ttl_seconds=TTL) == 0
    assert await backend.client.exists(KEYS.leaves) == 0


async def test_sealed_tree_refuses_inserts(backend: RedisBackend) -> None:
    r = backend.client
    leaves = relay_leaves(random.Random(3), 4)
    assert await insert_leaves(r, SUPPLIER, SESSION, leaves[:2], ttl_seconds=TTL) == 2
    await r.set(KEYS.root, bytes(48))
    assert await insert_leaves(r, SUPPLIER, SESSION, leaves[2:], ttl_seconds=TTL) == -1
    assert await r.hlen(KEYS.leaves) == 2


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([bytes(32), b"\x01r", bytes(32)], "odd number"),
        ([bytes(31), b"\x01r"], "not 32 bytes"),
        ([bytes(32), b"\x01r", bytes(range(32)), b""], "empty journal leaf value"),
    ],
)
async def test_bad_arguments_fail_before_any_write(
    backend: RedisBackend, pairs: list[bytes], message: str
) -> None:
    r = backend.client
    with pytest.raises(ResponseError, match=message):
        await r.eval(JOURNAL_INSERT, 2, KEYS.leaves, KEYS.root, TTL, *pairs)
    assert await r.exists(KEYS.leaves) == 0


async def test_wrong_type_key_is_an_error(backend: RedisBackend) -> None:
    await backend.client.set(KEYS.leaves, b"not a hash")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await insert_leaves(
            backend.client, SUPPLIER, SESSION, relay_leaves(random.Random(4), 1), ttl_seconds=TTL
        )


async def test_racing_writers_count_each_leaf_once(backend: RedisBackend) -> None:
    """Replicas redelivering the same relays concurrently: every relay is new exactly once."""
    leaves = relay_leaves(random.Random(5), 200)
    rng = random.Random(6)
    clients = [backend.new_client() for _ in range(4)]
    jobs = []
    sent: set[bytes] = set()
    for client in clients:
        mine = rng.sample(leaves, 150)  # the replicas' batches overlap
        sent.update(leaf[0] for leaf in mine)
        for i in range(0, 150, 25):
            jobs.append(insert_leaves(client, SUPPLIER, SESSION, mine[i : i + 25], ttl_seconds=TTL))
    rng.shuffle(jobs)
    results = await asyncio.gather(*jobs)
    assert sum(results) == len(sent) == await backend.client.hlen(KEYS.leaves)
    assert {leaf[0] for leaf in await read_leaves(backend.client, KEYS.leaves)} == sent


#: What the accounting step does with the fragment, in miniature: the journal pairs start at an
#: arbitrary ARGV offset, the number of new leaves moves the counters, nothing moves when sealed.
EMBEDDED = (
    JOURNAL_LUA
    + """
local problem = journal_check(4, #ARGV)
if problem then return redis.error_reply('ERR ' .. problem) end
if journal_sealed(KEYS[2]) then return {-1, 0} end
local new = journal_insert(KEYS[1], 4, #ARGV, ARGV[1])
if new > 0 then
  redis.call('HINCRBY', KEYS[3], 'relay_count', new)
  redis.call('HINCRBY', KEYS[3], 'total_compute_units', new * tonumber(ARGV[2]))
end
return {new, tonumber(ARGV[3])}
"""
)


async def test_fragment_embeds_at_any_argv_offset(backend: RedisBackend) -> None:
    r = backend.client
    session_hash = "ha:miner:sessions:pokt1supplier:session-1"
    leaves = relay_leaves(random.Random(7), 12, weights=[42])
    keys = (KEYS.leaves, KEYS.root, session_hash)

    async def account(batch: list[tuple[bytes, bytes, int]]) -> list[int]:
        reply = await r.eval(EMBEDDED, 3, *keys, TTL, 42, 99, *insert_args(batch))
        return [int(x) for x in reply]

    assert await account(leaves[:8]) == [8, 99]
    assert await account(leaves[4:]) == [4, 99]
    assert await r.hmget(session_hash, ["relay_count", "total_compute_units"]) == [b"12", b"504"]
    await r.set(KEYS.root, bytes(48))
    assert await account(relay_leaves(random.Random(8), 2)) == [-1, 0]
    assert await r.hget(session_hash, "relay_count") == b"12"
