"""Relay accounting: the one atomic step that counts relays, for the worker and the per-relay API.

Everything that moves a session's counters goes through :data:`ACCOUNT_BATCH`, and this module
holds the script, the packing of its arguments and the decoding of its reply together. The relay
worker runs it on a whole batch (dedup SADD, counters, creation, dead letters, ack and delete);
``SessionCoordinator.on_relay_processed`` and ``RedisSessionStore.increment_relay_count`` run it
on a batch of one relay without a dedup set (they have no relay hash).

The script works in two passes so that a failing script changes nothing (Redis does not roll a
script back when it errors midway):

1. checks, no writes: the lease (fence) token; the type of every key it will write (session
   hash, dedup set, indexes, streams, failure hash); legacy JSON snapshots (returned to the caller,
   which migrates them and runs again); and that no session's ``total_compute_units`` would pass
   2^63-1 (exactly, with decimal limbs: Lua numbers are doubles) -- a batch that would overflow
   returns ``OVERFLOW`` before any dedup SADD, so no relay is marked without being counted;
2. writes.

Why exactly once: see ``docs/exactly-once.md``.
"""

from __future__ import annotations

import struct
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from relayminer.errors import LeaseLostError, StoreError
from relayminer.keys import KeyBuilder
from relayminer.runtime.leases import Fence
from relayminer.sessions.model import (
    MAX_INT64,
    SessionSnapshot,
    SessionState,
    encode_hash,
)
from relayminer.sessions.scripts import (
    BIGNUM_LUA,
    FENCE_PRELUDE,
    PACKED_ARGS_LUA,
    TERMINAL_TABLE,
)
from relayminer.sessions.timefmt import format_rfc3339nano, utc_now
from relayminer.smst.journal import JOURNAL_LUA, pack_leaf_records
from relayminer.smst.nodes import SMSTError

#: KEYS: [1] stream, [2] dead-letter stream, [3] supplier index, [4] active-state index,
#:       [5] lease (fence) key, [6] entry failure hash, then per session i:
#:       [7+3(i-1)] session hash, [8+3(i-1)] gate (the dedup set, or the leaf journal),
#:       [9+3(i-1)] the tree's sealed root (journal gate only).
#: ARGV: [1] group, [2] ack mode ('xackdel' | 'xack'), [3] session ttl, [4] dedup ttl,
#:       [5] fence token ('' = unfenced), [6] now (RFC3339Nano), [7] number of sessions, then per
#:       session three arguments and its metadata values:
#:       - the session id;
#:       - a header of space-separated words ``n gate refresh g cu_1 k_1 .. cu_g k_g``: n =
#:         #metadata values (0: never create; -1: none sent, the caller believes the session
#:         exists -- reply MISSING if it does not); gate ('1': the dedup set decides counting;
#:         '2': the journal's HSETNX decides counting, a sealed journal counts nothing; '0':
#:         count every relay); refresh ('1': refresh the TTLs of the session's keys, '0': only
#:         set them on keys this step creates); then g groups of compute units (decimal) and
#:         their number of relays k;
#:       - n metadata values (full hash encoding, counters 0);
#:       - the relay records of all groups, in group order, packed into one argument: gate '1',
#:         per relay a 4-byte big-endian length and the relay hash; gate '2', the journal's
#:         records (``pack_leaf_records``); gate '0', empty.
#:       Then the ids to ack, space-separated in one argument; then d = #dead entries, per
#:       entry: f = #field values, f values.
#: Replies (all before any write): error 'FENCED'; error 'WRONGTYPE ...'; error for a bad
#: record argument; {'LEGACY', i}; {'OVERFLOW', i}; {'MISSING', i}. Otherwise one
#: {created, counted, status} triple per session (status 0 counted, 1 terminal or sealed:
#: nothing counted, 2 missing and not creatable: nothing counted).
#:
#: Per session the script reads the session hash with one HMGET (a TYPE only when that fails:
#: a legacy JSON snapshot or a foreign key), checks the gate key's type (and the journal's
#: sealed root), and refreshes TTLs only when asked (:attr:`BatchAccounting.ttl_refresh_s`):
#: with 1,000 sessions in a batch of a few thousand relays, this fixed work per session is
#: most of the script's time.
ACCOUNT_BATCH = (
    TERMINAL_TABLE
    + FENCE_PRELUDE
    + BIGNUM_LUA
    + PACKED_ARGS_LUA
    + JOURNAL_LUA
    + """
if fenced(KEYS[5], ARGV[5]) then return redis.error_reply('FENCED lease lost') end
local function need(key, ...)
  local t = redis.call('TYPE', key)['ok']
  for _, ok in ipairs({...}) do if t == ok then return t end end
  error('unexpected redis type for ' .. key .. ': ' .. t .. ' (nothing changed)')
end
need(KEYS[1], 'stream', 'none'); need(KEYS[2], 'stream', 'none')
need(KEYS[3], 'set', 'none'); need(KEYS[4], 'set', 'none'); need(KEYS[6], 'hash', 'none')
local nsess = tonumber(ARGV[7])
-- pass 1: parse and check, no writes
local sessions = {}
local p = 8
for i = 1, nsess do
  local base = 7 + 3 * (i - 1)
  local s = {sid = ARGV[p], key = KEYS[base], dedup = KEYS[base + 1], root = KEYS[base + 2]}
  local n, gate, refresh, g, at = string.match(ARGV[p + 1], '^(%-?%d+) ([012]) ([01]) (%d+)()')
  if not n then error('bad session header (session ' .. s.sid .. ', nothing changed)') end
  n = tonumber(n)
  s.ask = n < 0
  if s.ask then n = 0 end
  s.meta_from, s.meta_to, s.creatable = p + 2, p + 1 + n, n > 0
  s.dedup_on, s.journal, s.refresh = gate == '1', gate == '2', refresh == '1'
  local header, blob = ARGV[p + 1], ARGV[p + 2 + n]
  p = p + 3 + n
  s.fields, s.values, s.groups = {}, {}, {}
  local pos, upper = 1, 0
  for j = 1, tonumber(g) do
    local cu, k
    cu, k, at = string.match(header, '^ (%d+) (%d+)()', at)
    if not cu then error('bad session header (session ' .. s.sid .. ', nothing changed)') end
    local grp = {cu = cu, k = tonumber(k), from = #s.fields + 1}
    local problem
    if s.journal then
      pos, problem = journal_unpack(blob, pos, grp.k, s.fields, s.values)
    elseif s.dedup_on then
      pos = members_unpack(blob, pos, grp.k, s.fields)
      problem = 'truncated relay hash record'
    end
    if not pos then error(problem .. ' (session ' .. s.sid .. ', nothing changed)') end
    grp.to = #s.fields
    s.groups[j] = grp
    upper = upper + tonumber(grp.cu) * grp.k
  end
  if at ~= #header + 1 then
    error('bad session header (session ' .. s.sid .. ', nothing changed)')
  end
  if pos ~= #blob + 1 then
    error('trailing bytes after the relay records (session ' .. s.sid .. ', nothing changed)')
  end
  local r = redis.pcall('HMGET', s.key, 'state', 'total_compute_units', 'relay_count')
  if r['err'] then
    local t = redis.call('TYPE', s.key)['ok']
    if t == 'string' then return {'LEGACY', i} end
    error('unexpected redis type for session key ' .. s.key .. ': ' .. t .. ' (nothing changed)')
  end
  s.state = r[1]
  s.exists = (r[1] or r[2] or r[3]) and true or redis.call('EXISTS', s.key) == 1
  if not s.exists and s.ask then return {'MISSING', i} end
  if s.dedup_on then s.gate_new = need(s.dedup, 'set', 'none') == 'none' end
  if s.journal then
    s.gate_new = need(s.dedup, 'hash', 'none') == 'none'
    s.sealed = journal_sealed(s.root)
  end
  local total = '0'
  if s.exists then
    total = r[2] or '0'
    local count = r[3] or '0'
    if not string.match(total, '^-?%d+$') or not string.match(count, '^-?%d+$') then
      error('corrupt counters in ' .. s.key .. ' (nothing changed)')
    end
    s.count = r[3] and tonumber(count)
  end
  -- Exact overflow check, only when the double estimate comes near 2^63.
  if not s.sealed and string.sub(total, 1, 1) ~= '-' and tonumber(total) + upper >= 9.0e18 then
    local acc, seen = big(total), {}
    for _, grp in ipairs(s.groups) do
      local new = grp.k
      if s.dedup_on or s.journal then
        new = 0
        for x = grp.from, grp.to do
          local hash = s.fields[x]
          local known
          if s.journal then
            known = redis.call('HEXISTS', s.dedup, hash) == 1
          else
            known = redis.call('SISMEMBER', s.dedup, hash) == 1
          end
          if not seen[hash] and not known then new = new + 1 end
          seen[hash] = true
        end
      end
      if new > 0 then big_add_mul(acc, grp.cu, new) end
    end
    if big_gt(acc, MAX_I64) then return {'OVERFLOW', i} end
  end
  sessions[i] = s
end
local acks = words(ARGV[p]); p = p + 1
local ndead = tonumber(ARGV[p]); p = p + 1
-- pass 2: writes
local out, counts = {}, {}
for i = 1, nsess do
  local s = sessions[i]
  local created, counted, status = 0, 0, 0
  if not s.exists and s.creatable then
    redis.call('HSET', s.key, unpack(ARGV, s.meta_from, s.meta_to))
    redis.call('SADD', KEYS[3], s.sid)
    redis.call('EXPIRE', KEYS[3], ARGV[3])
    redis.call('SADD', KEYS[4], s.sid)
    redis.call('EXPIRE', KEYS[4], ARGV[3])
    created, s.exists = 1, true
  end
  if not s.exists then
    status = 2
  else
    if (s.state and TERMINAL[s.state]) or s.sealed then
      status = 1
    else
      for _, grp in ipairs(s.groups) do
        local new = grp.k
        if s.dedup_on then
          new = 0
          if grp.k > 0 then
            new = redis.call('SADD', s.dedup, unpack(s.fields, grp.from, grp.to))
          end
        elseif s.journal then
          new = journal_put(s.dedup, s.fields, s.values, grp.from, grp.to)
        end
        if new > 0 then
          local cu = tonumber(grp.cu)
          if cu * new < 9007199254740992 then
            redis.call('HINCRBY', s.key, 'total_compute_units', string.format('%.0f', cu * new))
          else
            for _ = 1, new do redis.call('HINCRBY', s.key, 'total_compute_units', grp.cu) end
          end
          counted = counted + new
        end
      end
      if s.refresh or s.gate_new then
        if s.dedup_on then redis.call('EXPIRE', s.dedup, ARGV[4]) end
        if s.journal then redis.call('EXPIRE', s.dedup, ARGV[3]) end
      end
      if counted > 0 then
        -- relay_count is set from the count read in pass 1 when that is exact (one HSET with
        -- last_updated_at instead of an HINCRBY more); counts[key] follows a session sent
        -- twice in one step.
        local before = counts[s.key] or s.count
        if created == 0 and before and before + counted < 9007199254740992 then
          counts[s.key] = before + counted
          redis.call('HSET', s.key, 'relay_count', string.format('%.0f', before + counted),
            'last_updated_at', ARGV[6])
        else
          counts[s.key] = redis.call('HINCRBY', s.key, 'relay_count', counted)
          redis.call('HSET', s.key, 'last_updated_at', ARGV[6])
        end
      end
    end
    if s.refresh or created == 1 then redis.call('EXPIRE', s.key, ARGV[3]) end
  end
  out[#out + 1] = created
  out[#out + 1] = counted
  out[#out + 1] = status
end
for _ = 1, ndead do
  local f = tonumber(ARGV[p])
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, p + 1, p + f))
  p = p + 1 + f
end
local nack = #acks
if nack > 0 then
  if ARGV[2] == 'xackdel' then
    redis.call('XACKDEL', KEYS[1], ARGV[1], 'DELREF', 'IDS', nack, unpack(acks))
  else
    redis.call('XACK', KEYS[1], ARGV[1], unpack(acks))
    redis.call('XDEL', KEYS[1], unpack(acks))
  end
  if redis.call('EXISTS', KEYS[6]) == 1 then
    redis.call('HDEL', KEYS[6], unpack(acks))
  end
end
return out
"""
)

STATUS_COUNTED, STATUS_TERMINAL, STATUS_MISSING = 0, 1, 2


class ComputeUnitsOverflowError(StoreError, ValueError):
    """Counting these relays would take a session's ``total_compute_units`` past 2^63-1."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"total_compute_units of session {session_id} would exceed 2^63-1")
        self.session_id = session_id


@dataclass
class SessionRelays:
    """What one session contributes to an accounting step.

    ``hashes``/``compute_units`` are parallel. ``dedup`` False counts every relay (the per-relay
    API, which has no relay hash); ``create`` is the snapshot written when the session is new
    (None: a missing session is not created and reports ``STATUS_MISSING``).

    ``relay_bytes`` (parallel too) selects the journal layout's gate: each relay becomes a leaf
    of the session's leaf journal (weight = its compute units) and is counted exactly when its
    relay hash is new there; a sealed journal counts nothing (``STATUS_TERMINAL``). No dedup
    set is written then (docs/leaf-journal.md).
    """

    session_id: str
    compute_units: list[int]
    hashes: list[bytes] = field(default_factory=list)
    dedup: bool = True
    create: SessionSnapshot | None = None
    relay_bytes: list[bytes] | None = None
    #: the caller believes the session exists: ``create`` is not sent (a batch of many sessions
    #: stays small); if it is missing, the step writes nothing and raises :class:`SessionMissing`
    known: bool = False


@dataclass
class DeadLetter:
    """A stream entry to move to the dead-letter stream, with its reason."""

    entry_id: bytes
    reason: str
    data: bytes | None
    deliveries: int


@dataclass(frozen=True)
class SessionOutcome:
    session_id: str
    created: bool
    counted: int
    status: int
    relays: int

    @property
    def duplicates(self) -> int:
        return self.relays - self.counted if self.status == STATUS_COUNTED else 0


@dataclass(frozen=True)
class StreamAck:
    """The stream side of a batch: entries to ack and delete, dead letters to write."""

    stream: str
    dead_stream: str
    failures: str
    group: str
    mode: str  # 'xackdel' | 'xack'
    consumer: str
    entry_ids: Sequence[bytes]
    dead: Sequence[DeadLetter]


class SessionMissing(Exception):
    """A session sent as ``known`` (no snapshot) does not exist: nothing was written; send it
    again with its snapshot."""

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id)
        self.session_id = session_id


class LegacySnapshot(Exception):
    """A session key holds a legacy JSON snapshot: migrate it and run again."""

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id)
        self.session_id = session_id


#: Sessions whose last TTL refresh :class:`BatchAccounting` remembers; past it the memory is
#: cleared, and every session's TTLs are refreshed by its next step again.
REFRESH_MEMORY = 100_000
#: remembered refreshes below which nothing is forgotten (:meth:`BatchAccounting._forget_due`)
_PRUNE_FLOOR = 1024

_LENGTH = struct.Struct(">I").pack


def pack_members(hashes: Sequence[bytes]) -> bytes:
    """The packed argument of a dedup-set gate: per relay hash, its length (4 bytes,
    big-endian) and the hash (the script's ``members_unpack``).

    >>> pack_members([b"ab"]).hex()
    '000000026162'
    """
    return b"".join([part for h in hashes for part in (_LENGTH(len(h)), h)])


class BatchAccounting:
    """Packs, runs and decodes :data:`ACCOUNT_BATCH` for one supplier.

    TTL refresh policy: with ``ttl_refresh_s`` 0 (the default, and what the per-relay API
    uses) every step refreshes the TTLs of the keys of each session it touches. The relay
    worker sets it (:func:`worker_ttl_refresh_s`): a session's keys then get their TTL when a
    step creates them, and again at most once per ``ttl_refresh_s`` per session by this
    process. A key therefore still lives at least ``ttl - ttl_refresh_s`` after the last relay
    that touched it; the refresh saved is most of the fixed work per session when a batch spans
    1,000 sessions. A step that fails refreshes nothing, and is not remembered as having done so.
    """

    def __init__(
        self,
        redis: Redis,
        supplier: str,
        keys: KeyBuilder,
        *,
        session_ttl_seconds: int,
        fence: Fence | None = None,
    ) -> None:
        self.supplier = supplier
        #: session id -> its three keys and its id, encoded (redis-py encodes ``str`` arguments
        #: in Python, one call each: with 1,000 sessions a batch, that was a large cost)
        self._session_args: dict[tuple[str, bool], tuple[bytes, bytes, bytes, bytes]] = {}
        self.keys = keys
        self.session_ttl = session_ttl_seconds
        self.fence = fence
        self.ttl_refresh_s = 0.0
        #: the clock of the refresh policy (tests move it)
        self.clock: Callable[[], float] = time.monotonic
        #: session id -> ``clock()`` of the last step that refreshed its TTLs
        self._refreshed: dict[str, float] = {}
        #: how many remembered refreshes trigger :meth:`_forget_due` (amortised: twice what
        #: was left by the last one)
        self._prune_at = _PRUNE_FLOOR
        self._script = redis.register_script(ACCOUNT_BATCH)

    async def run(
        self,
        sessions: Sequence[SessionRelays],
        *,
        dedup_ttl_seconds: int | None = None,
        ack: StreamAck | None = None,
    ) -> list[SessionOutcome]:
        """One atomic accounting step. Raises :class:`LegacySnapshot` (nothing written) when a
        session key holds a legacy JSON snapshot, :class:`ComputeUnitsOverflowError` (nothing
        written) when a session would overflow, :class:`LeaseLostError` when fenced off."""
        now = self.clock()
        refresh = [self._refresh_due(s.session_id, now) for s in sessions]
        keys, args = self._pack(sessions, refresh, dedup_ttl_seconds or self.session_ttl, ack)
        try:
            reply = await self._script(keys=keys, args=args)
        except ResponseError as err:
            if "FENCED" in str(err):
                raise LeaseLostError(f"lease of {self.supplier} lost: {err}") from err
            raise
        if reply and reply[0] in (b"LEGACY", "LEGACY"):
            raise LegacySnapshot(sessions[int(reply[1]) - 1].session_id)
        if reply and reply[0] in (b"MISSING", "MISSING"):
            raise SessionMissing(sessions[int(reply[1]) - 1].session_id)
        if reply and reply[0] in (b"OVERFLOW", "OVERFLOW"):
            raise ComputeUnitsOverflowError(sessions[int(reply[1]) - 1].session_id)
        if self.ttl_refresh_s > 0:
            if len(self._refreshed) > REFRESH_MEMORY:
                self._refreshed.clear()
            for s, refreshed in zip(sessions, refresh, strict=True):
                if refreshed:
                    self._refreshed[s.session_id] = now
            if len(self._refreshed) > self._prune_at:
                self._forget_due(now)
        return [
            SessionOutcome(
                s.session_id,
                bool(reply[3 * i]),
                int(reply[3 * i + 1]),
                int(reply[3 * i + 2]),
                len(s.compute_units),
            )
            for i, s in enumerate(sessions)
        ]

    def _forget_due(self, now: float) -> None:
        """Forget the sessions whose refresh is due anyway, and their encoded keys: a long run's
        memory follows its live sessions, not its history (a session forgotten while it still
        gets relays is refreshed by its next step, and its keys encoded again)."""
        due = now - self.ttl_refresh_s
        self._refreshed = {sid: t for sid, t in self._refreshed.items() if t > due}
        live = self._refreshed
        self._session_args = {k: v for k, v in self._session_args.items() if k[0] in live}
        self._prune_at = max(_PRUNE_FLOOR, 2 * len(live))

    @property
    def keys(self) -> KeyBuilder:
        return self._keys

    @keys.setter
    def keys(self, keys: KeyBuilder) -> None:
        self._keys = keys
        self._session_args.clear()

    def _session(self, session_id: str, journal: bool) -> tuple[bytes, bytes, bytes, bytes]:
        """The session's hash, gate and root keys (the hash again without a journal), and its
        id, encoded once per session."""
        cached = self._session_args.get((session_id, journal))
        if cached is None:
            if len(self._session_args) > REFRESH_MEMORY:
                self._session_args.clear()
            kb, sup = self._keys, self.supplier
            session_key = kb.miner_session_key(sup, session_id)
            if journal:
                gate, root = kb.smst_leaves_key(sup, session_id), kb.smst_root_key(sup, session_id)
            else:
                gate, root = kb.miner_dedup_session_key(session_id, sup), session_key
            cached = (session_key.encode(), gate.encode(), root.encode(), session_id.encode())
            self._session_args[(session_id, journal)] = cached
        return cached

    def _refresh_due(self, session_id: str, now: float) -> bool:
        if self.ttl_refresh_s <= 0:
            return True
        last = self._refreshed.get(session_id)
        return last is None or now - last >= self.ttl_refresh_s

    def _pack(
        self,
        sessions: Sequence[SessionRelays],
        refresh: Sequence[bool],
        dedup_ttl: int,
        ack: StreamAck | None,
    ) -> tuple[list[Any], list[Any]]:
        fence = self.fence
        index = self.keys.miner_sessions_index_key(self.supplier)
        keys: list[Any] = [
            ack.stream if ack else index,
            ack.dead_stream if ack else index,
            index,
            self.keys.miner_session_state_index_key(self.supplier, SessionState.ACTIVE.value),
            fence.key if fence else self.keys.miner_claim_key(self.supplier),
            ack.failures if ack else index,
        ]
        stamp = utc_now()
        args: list[Any] = [
            ack.group if ack else "",
            ack.mode if ack else "xack",
            self.session_ttl,
            dedup_ttl,
            fence.token if fence else "",
            format_rfc3339nano(stamp),
            len(sessions),
        ]
        # The index key stands in for absent stream keys: with no ids and no dead letters the
        # script never writes them (and a set passes the type checks of neither... so it is
        # only used when ``ack`` is None, where the stream checks accept 'none' or 'stream').
        if ack is None:
            keys[0] = keys[1] = keys[5] = self.keys.miner_session_key(self.supplier, "\x00")
        for s, refreshed in zip(sessions, refresh, strict=True):
            journal = s.relay_bytes is not None
            session_key, gate_key, root_key, sid = self._session(s.session_id, journal)
            keys += (session_key, gate_key, root_key)
            meta: list[Any] = []
            if s.known:
                n = -1
            elif s.create is not None:
                snapshot = s.create
                snapshot.created_at = snapshot.created_at or stamp
                snapshot.last_updated_at = stamp
                for name, value in encode_hash(snapshot, with_counters=True).items():
                    meta += [name, value]
                n = len(meta)
            else:
                n = 0
            gate = "2" if journal else "1" if s.dedup else "0"
            groups = _groups(s.compute_units)
            header = [str(n), gate, "1" if refreshed else "0", str(len(groups))]
            records: list[bytes] = []
            for cu, idx in groups.items():
                header += [str(cu), str(len(idx))]
                if journal:
                    assert s.relay_bytes is not None
                    hashes, bodies = s.hashes, s.relay_bytes
                    if len(groups) > 1:
                        hashes, bodies = [hashes[i] for i in idx], [bodies[i] for i in idx]
                    try:
                        records.append(pack_leaf_records(hashes, bodies, cu))
                    except SMSTError as err:
                        raise ValueError(str(err)) from None
                elif s.dedup:
                    hashes = s.hashes if len(groups) == 1 else [s.hashes[i] for i in idx]
                    records.append(pack_members(hashes))
            args += (sid, " ".join(header).encode(), *meta, b"".join(records))
        if ack is None:
            args += [b"", 0]
            return keys, args
        args.append(b" ".join(ack.entry_ids))
        args.append(len(ack.dead))
        now_ms = int(time.time() * 1000)
        for d in ack.dead:
            fields: list[Any] = [
                "id",
                d.entry_id,
                "reason",
                d.reason,
                "consumer",
                ack.consumer,
                "deliveries",
                d.deliveries,
                "dead_at_ms",
                now_ms,
            ]
            if d.data is not None:
                fields += ["data", d.data]
            args += [len(fields), *fields]
        return keys, args


def _groups(compute_units: Sequence[int]) -> dict[int, Sequence[int]]:
    """Relay indexes by compute units, in first-seen order (validated: [0, 2^63-1]). The usual
    batch of a session has one value: its indexes are then the whole range."""
    distinct = set(compute_units)
    for cu in distinct:
        if not 0 <= cu <= MAX_INT64:
            raise ValueError(f"compute_units must be in [0, 2^63-1], got {cu}")
    if len(distinct) == 1:
        return {compute_units[0]: range(len(compute_units))}
    groups: dict[int, list[int]] = defaultdict(list)
    for i, cu in enumerate(compute_units):
        groups[cu].append(i)
    return dict(groups)


def worker_ttl_refresh_s(session_ttl_seconds: int) -> float:
    """The relay worker's TTL refresh interval: a tenth of the TTL, at most a minute (keys then
    live at least 90% of their TTL after their last relay)."""
    return float(min(60, session_ttl_seconds // 10))
