"""The leaf journal: a session's SMST persisted as its leaves only (docs/leaf-journal.md).

A tree is a pure function of its leaf set, so the only state that cannot be recomputed is each
session's leaves. They live in one Redis HASH per supplier and session:

=============================================  ====  ===========================================
``ha:smst:{supplier}:{session_id}:leaves``     HASH  field = the raw 32-byte relay hash (SMST
                                                     key), value = :func:`encode_leaf_value`
                                                     ``(weight, relay bytes)``
``ha:smst:{supplier}:{session_id}:root``       STR   48-byte sealed (claimed) root, as in the
                                                     Go layout; its presence refuses inserts
``ha:smst:{supplier}:{session_id}:stats``      STR   ``"<count>:<sum>"`` of the sealed root
=============================================  ====  ===========================================

Leaf value encoding: the weight as a Go gob unsigned integer (one byte below 128, else one byte
``256 - n`` and ``n`` big-endian bytes, n <= 8; :func:`relayminer.smst.gob.encode_uint`),
immediately followed by the relay bytes (no length: they run to the end of the value). A
250-byte relay of weight 42 is stored as a 251-byte value under a 32-byte field.

Exactly once: ``HSETNX`` on the relay hash *is* the gate. The first write of a relay hash wins
and reports 1; a redelivery reports 0 and changes nothing (not even the weight), so the
counters the accounting step moves by "how many were new" always match the journal. The Lua
text the accounting step embeds is :data:`JOURNAL_LUA` (contract in its comment);
:data:`JOURNAL_INSERT` wraps it as a standalone script.

Sealing: the claim builds the tree from the leaves read with ``HSCAN``, then
:data:`JOURNAL_SEAL` writes ``:root`` only if ``HLEN`` still equals the number of leaves the
tree was built from. The journal only ever grows, so an equal count means the very same set:
the root written is the root of the journal at that instant, and every insert after it is
refused (the fragment checks ``:root``). Two replicas sealing at once write the same root (it
depends only on the set), so sealing needs no lease.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from relayminer.keys import KeyBuilder, Namespace
from relayminer.runtime.script_batch import ScriptCall, run_script_calls
from relayminer.smst.bulk import bulk_build
from relayminer.smst.gob import encode_uint
from relayminer.smst.nodes import DIGEST_SIZE, PATH_SIZE, SMSTError, digest_count, digest_sum
from relayminer.smst.trie import SparseMerkleSumTrie

__all__ = [
    "JOURNAL_INSERT",
    "JOURNAL_LUA",
    "JOURNAL_SEAL",
    "JournalCorruptError",
    "JournalKeys",
    "SealResult",
    "build_session_tree",
    "decode_leaf_value",
    "encode_leaf_value",
    "insert_args",
    "insert_leaves",
    "journal_keys",
    "pack_leaf_records",
    "read_leaves",
    "read_leaves_many",
    "scan_leaves",
    "seal_session_tree",
    "seal_session_trees",
]

Leaf = tuple[bytes, bytes, int]  # (relay hash, relay bytes, weight): an SMST (key, value, weight)

#: Hash fields asked per ``HSCAN`` call: ~270 KB of 250-byte relays per reply, 100 round trips
#: for a 100k-leaf session, and never a reply that blocks the server for long.
SCAN_COUNT = 1000

#: Lua fragment for the relay worker's accounting script: three local functions, no top-level
#: code. Every argument is read from ARGV by index; nothing here touches other keys.
#:
#: ``journal_check(from, to)`` -> nil, or an error message. Pass 1 (before any write): ARGV[from
#:     .. to] must be pairs of a 32-byte relay hash and a non-empty leaf value. A script must not
#:     fail after writing (Redis does not roll scripts back), hence the separate check.
#: ``journal_sealed(root_key)`` -> true when the session's tree is sealed (``:root`` exists):
#:     the step must then insert nothing for that session (its relays are past the claim).
#: ``journal_insert(leaves_key, from, to, ttl)`` -> how many relay hashes were new. HSETNX of
#:     each pair ARGV[i] (field) -> ARGV[i+1] (value) for i = from, from+2, .., to-1; then
#:     EXPIRE leaves_key ttl. A hash already present keeps its first value and counts 0.
#:     The caller counts compute units and relays by the returned number: it is the gate.
#:
#: The relay worker's accounting step sends each session's leaves as ONE packed argument
#: (:func:`pack_leaf_records`) instead of two arguments per leaf: redis-py encodes every argument
#: in Python, and at 1,000 sessions per batch that encoding was the worker's largest cost.
#:
#: ``journal_unpack(blob, pos, k, fields, values)`` -> the position after the ``k`` records read
#:     from ``blob`` at ``pos`` (appended to the tables ``fields`` and ``values``), or nil and an
#:     error message (a truncated record, an empty value). Pass 1, before any write.
#: ``journal_put(leaves_key, fields, values, from, to)`` -> how many relay hashes were new:
#:     HSETNX ``fields[i]`` -> ``values[i]`` for i = from .. to (no EXPIRE: the caller decides
#:     when the TTL is refreshed). The gate, as ``journal_insert``.
JOURNAL_LUA = """
local function journal_check(from, to)
  if (to - from + 1) % 2 ~= 0 then return 'odd number of journal arguments' end
  for i = from, to, 2 do
    if #ARGV[i] ~= 32 then return 'journal relay hash is not 32 bytes' end
    if #ARGV[i + 1] == 0 then return 'empty journal leaf value' end
  end
  return nil
end
local function journal_sealed(root_key)
  return redis.call('EXISTS', root_key) == 1
end
local function journal_insert(leaves_key, from, to, ttl)
  local new = 0
  for i = from, to, 2 do
    new = new + redis.call('HSETNX', leaves_key, ARGV[i], ARGV[i + 1])
  end
  redis.call('EXPIRE', leaves_key, ttl)
  return new
end
local function journal_unpack(blob, pos, k, fields, values)
  local size = #blob
  for _ = 1, k do
    if pos + 35 > size then return nil, 'truncated journal leaf record' end
    local a, b, c, d = string.byte(blob, pos + 32, pos + 35)
    local n = ((a * 256 + b) * 256 + c) * 256 + d
    if n == 0 then return nil, 'empty journal leaf value' end
    local last = pos + 35 + n
    if last > size then return nil, 'truncated journal leaf record' end
    fields[#fields + 1] = string.sub(blob, pos, pos + 31)
    values[#values + 1] = string.sub(blob, pos + 36, last)
    pos = last + 1
  end
  return pos
end
local function journal_put(leaves_key, fields, values, from, to)
  local new = 0
  for i = from, to do
    new = new + redis.call('HSETNX', leaves_key, fields[i], values[i])
  end
  return new
end
"""

#: Standalone insert (tests, tools and any caller outside the accounting step).
#: KEYS: [1] leaves hash, [2] sealed root. ARGV: [1] ttl (seconds), [2..] relay hash, value pairs.
#: Returns the number of new leaves, or -1 when the tree is sealed (nothing written); a bad
#: argument is an error reply before any write.
JOURNAL_INSERT = (
    JOURNAL_LUA
    + """
local problem = journal_check(2, #ARGV)
if problem then return redis.error_reply('ERR ' .. problem) end
if journal_sealed(KEYS[2]) then return -1 end
return journal_insert(KEYS[1], 2, #ARGV, ARGV[1])
"""
)

#: Seal the journal for its claim. KEYS: [1] sealed root, [2] leaves hash, [3] stats.
#: ARGV: [1] the 48-byte root built from the leaves, [2] how many leaves it was built from,
#: [3] ttl, [4] stats (``"<count>:<sum>"``).
#: Returns {1, root} sealed now, {2, root} already sealed (that root, first seal wins), or
#: {0, HLEN} when the journal no longer has the count given (rebuild and retry).
JOURNAL_SEAL = """
local sealed = redis.call('GET', KEYS[1])
if sealed and #sealed == 48 then return {2, sealed} end
local n = redis.call('HLEN', KEYS[2])
if n ~= tonumber(ARGV[2]) then return {0, n} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return {1, ARGV[1]}
"""


class JournalCorruptError(SMSTError, ValueError):
    """A stored journal entry cannot be a leaf (bad field length or value encoding)."""

    def __init__(self, key: str, field: bytes, reason: str) -> None:
        super().__init__(f"corrupt leaf journal entry in {key} (field {field.hex()}): {reason}")
        self.key = key
        self.field = field
        self.reason = reason


# --- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalKeys:
    """The Redis keys of one session's journal (same ``ha:smst:{supplier}:{session}:`` prefix
    as the Go layout, so ``smst_session_all_pattern`` covers them)."""

    leaves: str
    root: str
    stats: str


def journal_keys(
    supplier: str, session_id: str, namespace: Namespace | None = None, *, hash_tagged: bool = False
) -> JournalKeys:
    """The journal keys of ``(supplier, session_id)`` (``hash_tagged``: the Redis Cluster
    layout, see :class:`~relayminer.keys.KeyBuilder`).

    >>> journal_keys("pokt1sup", "s1").leaves
    'ha:smst:pokt1sup:s1:leaves'
    """
    kb = KeyBuilder.cluster(namespace) if hash_tagged else KeyBuilder(namespace)
    return JournalKeys(
        leaves=kb.smst_leaves_key(supplier, session_id),
        root=kb.smst_root_key(supplier, session_id),
        stats=kb.smst_stats_key(supplier, session_id),
    )


def _client_journal_keys(
    redis: Redis, supplier: str, session_id: str, namespace: Namespace | None
) -> JournalKeys:
    """The journal keys in the layout ``redis`` needs (hash-tagged on a Redis Cluster)."""
    tagged = KeyBuilder.for_client(redis).hash_tagged
    return journal_keys(supplier, session_id, namespace, hash_tagged=tagged)


# --- value encoding -------------------------------------------------------------------------


def encode_leaf_value(weight: int, relay_bytes: bytes) -> bytes:
    """The journal value of a leaf: gob uint ``weight`` then the relay bytes.

    >>> encode_leaf_value(42, b"relay").hex(), encode_leaf_value(1000, b"r").hex()
    ('2a72656c6179', 'fe03e872')
    """
    if not relay_bytes:
        raise SMSTError("a journal leaf needs non-empty relay bytes")
    return encode_uint(weight) + relay_bytes


def decode_leaf_value(value: bytes) -> tuple[int, bytes]:
    """``(weight, relay bytes)`` of a journal value; ValueError when it is not one.

    >>> decode_leaf_value(bytes.fromhex("fe03e872"))
    (1000, b'r')
    """
    if not value:
        raise ValueError("empty value")
    head = value[0]
    if head < 0x80:
        weight, start = head, 1
    else:
        n = 256 - head
        if n > 8:
            raise ValueError(f"weight length byte 0x{head:02x} is not a gob uint")
        weight, start = int.from_bytes(value[1 : 1 + n], "big"), 1 + n
    if len(value) <= start:
        raise ValueError("no relay bytes after the weight")
    return weight, value[start:]


def insert_args(leaves: Iterable[Leaf]) -> list[bytes]:
    """The ARGV pairs ``relay hash, value`` of :data:`JOURNAL_LUA` for ``leaves``, validated
    (a bad leaf raises here, before anything reaches Redis)."""
    args: list[bytes] = []
    for relay_hash, relay_bytes, weight in leaves:
        if len(relay_hash) != PATH_SIZE:
            raise SMSTError(f"relay hash must be 32 bytes, got {len(relay_hash)}")
        args += (relay_hash, encode_leaf_value(weight, relay_bytes))
    return args


_RECORD_LENGTH = struct.Struct(">I")


def pack_leaf_records(
    relay_hashes: Sequence[bytes], relay_bytes: Sequence[bytes], weight: int
) -> bytes:
    """The packed argument :data:`JOURNAL_LUA`'s ``journal_unpack`` reads: per leaf, the 32-byte
    relay hash, the value's length (4 bytes, big-endian), then the value
    (:func:`encode_leaf_value`). One weight for all: the accounting step groups leaves by
    compute units. Validated here, before anything reaches Redis.

    >>> pack_leaf_records([bytes(32)], [b"r"], 42).hex()[64:]
    '000000022a72'
    """
    prefix = encode_uint(weight)
    head = len(prefix)
    length = _RECORD_LENGTH.pack
    parts: list[bytes] = []
    append = parts.append
    for relay_hash, body in zip(relay_hashes, relay_bytes, strict=True):
        if len(relay_hash) != PATH_SIZE:
            raise SMSTError(f"relay hash must be 32 bytes, got {len(relay_hash)}")
        if not body:
            raise SMSTError("a journal leaf needs non-empty relay bytes")
        append(relay_hash)
        append(length(head + len(body)))
        append(prefix)
        append(body)
    return b"".join(parts)


# --- Redis ----------------------------------------------------------------------------------


async def insert_leaves(
    redis: Redis,
    supplier: str,
    session_id: str,
    leaves: Iterable[Leaf],
    *,
    ttl_seconds: int,
    namespace: Namespace | None = None,
) -> int:
    """Insert-if-absent ``leaves`` into the session's journal in one script call: the number
    that were new, or -1 when the tree is sealed (nothing written)."""
    keys = _client_journal_keys(redis, supplier, session_id, namespace)
    args = insert_args(leaves)
    new = await redis.eval(JOURNAL_INSERT, 2, keys.leaves, keys.root, ttl_seconds, *args)
    return int(new)


async def scan_leaves(
    redis: Redis, key: str, count: int = SCAN_COUNT
) -> AsyncIterator[list[tuple[bytes, bytes]]]:
    """The raw ``(field, value)`` entries of the journal ``key``, one ``HSCAN`` reply at a time.

    ``HSCAN`` returns every entry present for the whole scan at least once, possibly more than
    once (while the hash is rehashed): callers keep the last copy of each field.
    """
    cursor = 0
    while True:
        reply = await redis.hscan(key, cursor, count=count)
        cursor, batch = reply[0], cast("dict[bytes, bytes]", reply[1])
        if batch:
            yield list(batch.items())
        if cursor == 0:
            return


async def read_leaves(redis: Redis, key: str, count: int = SCAN_COUNT) -> list[Leaf]:
    """Every leaf of the journal ``key`` (each relay hash once), decoded; raises
    :class:`JournalCorruptError` on an entry that is not a leaf."""
    raw: dict[bytes, bytes] = {}
    async for batch in scan_leaves(redis, key, count):
        raw.update(batch)
    return decode_leaves(key, raw)


async def read_leaves_many(
    redis: Redis, keys: Sequence[str], count: int = SCAN_COUNT
) -> list[list[Leaf] | JournalCorruptError]:
    """:func:`read_leaves` of many journals: the first ``HSCAN`` page of every journal in one
    round trip (a claim group's journals usually fit in it), then the rest of any longer one
    alone. Per key its leaves, or the :class:`JournalCorruptError` of its bad entry."""
    if not keys:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hscan(key, 0, count=count)
        replies = await pipe.execute()
    out: list[list[Leaf] | JournalCorruptError] = []
    for key, reply in zip(keys, replies, strict=True):
        cursor, raw = reply[0], dict(cast("dict[bytes, bytes]", reply[1]))
        while cursor != 0:  # a long journal: the rest of its pages (same HSCAN contract)
            cursor, more = await redis.hscan(key, cursor, count=count)
            raw.update(cast("dict[bytes, bytes]", more))
        try:
            out.append(decode_leaves(key, raw))
        except JournalCorruptError as err:
            out.append(err)
    return out


def decode_leaves(key: str, raw: dict[bytes, bytes]) -> list[Leaf]:
    """The leaves of the journal ``key`` from its raw ``(field, value)`` entries; raises
    :class:`JournalCorruptError` on an entry that is not a leaf.

    >>> decode_leaves("k", {bytes(32): encode_leaf_value(7, b"relay")})[0][1:]
    (b'relay', 7)
    """
    leaves: list[Leaf] = []
    append = leaves.append
    for field, value in raw.items():
        if len(field) != PATH_SIZE:
            raise JournalCorruptError(key, field, f"field is {len(field)} bytes, not 32")
        head = value[0] if value else 0xFF
        if head < 0x80 and len(value) > 1:  # the usual case, inline
            append((field, value[1:], head))
            continue
        try:
            weight, relay = decode_leaf_value(value)
        except ValueError as err:
            raise JournalCorruptError(key, field, str(err)) from None
        append((field, relay, weight))
    return leaves


async def build_session_tree(
    redis: Redis, supplier: str, session_id: str, namespace: Namespace | None = None
) -> SparseMerkleSumTrie:
    """The session's tree, bulk-built in memory from its journal (empty when it has none).

    Proof-ready: ``prove_closest`` works on it. The node bytes are those of an
    ascending-path-order build, so rebuilding after a restart gives the same proofs.
    """
    keys = _client_journal_keys(redis, supplier, session_id, namespace)
    return bulk_build(await read_leaves(redis, keys.leaves))


@dataclass(frozen=True)
class SealResult:
    """What :func:`seal_session_tree` sealed: the claimed root and the tree behind it.

    ``trie`` is None when the session had been sealed already by someone else and its journal
    no longer has exactly the sealed leaves (``root`` is then the sealed root; a caller proving
    it rebuilds with :func:`build_session_tree` and compares roots).
    """

    root: bytes
    trie: SparseMerkleSumTrie | None
    sealed_now: bool

    @property
    def count(self) -> int:
        return digest_count(self.root)

    @property
    def sum(self) -> int:
        return digest_sum(self.root)


async def seal_session_tree(
    redis: Redis,
    supplier: str,
    session_id: str,
    *,
    ttl_seconds: int,
    namespace: Namespace | None = None,
    max_attempts: int = 8,
) -> SealResult:
    """Seal the session's journal for its claim and return the claimed root with its tree.

    Builds the tree from the journal, then seals only if the journal still holds exactly the
    leaves built from (:data:`JOURNAL_SEAL`); a batch that landed in between makes it rebuild.
    Sealing an already sealed session returns the sealed root (first seal wins).
    """
    keys = _client_journal_keys(redis, supplier, session_id, namespace)
    for _ in range(max_attempts):
        trie = await build_session_tree(redis, supplier, session_id, namespace)
        root = trie.root()
        stats = f"{digest_count(root)}:{digest_sum(root)}"
        reply = await redis.eval(
            JOURNAL_SEAL,
            3,
            keys.root,
            keys.leaves,
            keys.stats,
            root,
            trie.count(),
            ttl_seconds,
            stats,
        )
        code, value = int(reply[0]), reply[1]
        if code == 1:
            return SealResult(root, trie, True)
        if code == 2:
            assert isinstance(value, bytes) and len(value) == DIGEST_SIZE
            return SealResult(value, trie if value == root else None, False)
    raise SMSTError(
        f"session {session_id}: the leaf journal kept growing while sealing "
        f"({max_attempts} attempts); is a worker still writing to a session past its end?"
    )


async def seal_session_trees(
    redis: Redis,
    supplier: str,
    session_ids: Sequence[str],
    *,
    ttl_seconds: int,
    namespace: Namespace | None = None,
    prebuilt: Mapping[str, SparseMerkleSumTrie] | None = None,
) -> dict[str, SealResult | SMSTError]:
    """:func:`seal_session_tree` of a claim group in two round trips whatever its size: every
    journal read at once (:func:`read_leaves_many`), every seal sent at once
    (:mod:`relayminer.runtime.script_batch`). A session whose journal grew between the read and
    its seal is sealed again alone. Per session id its :class:`SealResult`, or its own error (a
    corrupt journal, a refused seal); a transport error fails the group.

    ``prebuilt``: trees already built from these journals (before the claim window opened);
    they are sealed without reading their journal again. The seal's leaf count check makes that
    safe: a journal that grew since is read and sealed again alone.
    """
    tagged = KeyBuilder.for_client(redis).hash_tagged
    prebuilt = prebuilt or {}
    keys = {sid: _client_journal_keys(redis, supplier, sid, namespace) for sid in session_ids}
    to_read = [sid for sid in session_ids if sid not in prebuilt]
    leaf_reads = await read_leaves_many(redis, [keys[sid].leaves for sid in to_read])
    read = dict(zip(to_read, leaf_reads, strict=True))
    script = redis.register_script(JOURNAL_SEAL)
    out: dict[str, SealResult | SMSTError] = {}
    built: list[tuple[str, SparseMerkleSumTrie]] = []
    calls: list[ScriptCall] = []
    for sid in session_ids:
        k = keys[sid]
        trie_or_leaves = prebuilt[sid] if sid in prebuilt else read[sid]
        if isinstance(trie_or_leaves, JournalCorruptError):
            out[sid] = trie_or_leaves
            continue
        trie = (
            trie_or_leaves
            if isinstance(trie_or_leaves, SparseMerkleSumTrie)
            else bulk_build(trie_or_leaves)
        )
        root = trie.root()
        stats = f"{digest_count(root)}:{digest_sum(root)}"
        built.append((sid, trie))
        calls.append(
            ScriptCall(
                script, [k.root, k.leaves, k.stats], [root, trie.count(), ttl_seconds, stats]
            )
        )
    replies = await run_script_calls(redis, calls, one_by_one=tagged)
    for (sid, trie), reply in zip(built, replies, strict=True):
        if isinstance(reply, Exception):
            out[sid] = SMSTError(f"session {sid}: seal refused: {reply}")
            continue
        code, value = int(reply[0]), reply[1]
        if code == 1:
            out[sid] = SealResult(trie.root(), trie, True)
        elif code == 2:
            assert isinstance(value, bytes) and len(value) == DIGEST_SIZE
            out[sid] = SealResult(value, trie if value == trie.root() else None, False)
        else:  # the journal grew since it was read: seal it alone (rebuild, retry)
            try:
                out[sid] = await seal_session_tree(
                    redis, supplier, sid, ttl_seconds=ttl_seconds, namespace=namespace
                )
            except SMSTError as err:
                out[sid] = err
    return out
