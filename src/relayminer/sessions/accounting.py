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

import time
from collections import defaultdict
from collections.abc import Sequence
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
from relayminer.sessions.scripts import FENCE_PRELUDE, TERMINAL_TABLE
from relayminer.sessions.timefmt import format_rfc3339nano, utc_now
from relayminer.smst.journal import JOURNAL_LUA, encode_leaf_value
from relayminer.smst.nodes import PATH_SIZE

#: Decimal-limb arithmetic for the exact int64 overflow check (limbs of 10^7, little endian:
#: every intermediate product stays far below 2^53).
_BIGNUM = """
local function big(s)
  local t, i = {}, #s
  while i >= 1 do
    local j = math.max(1, i - 6)
    t[#t + 1] = tonumber(string.sub(s, j, i))
    i = j - 1
  end
  return t
end
local function big_add_mul(acc, s, n)
  local b, carry, i = big(s), 0, 1
  while i <= #acc or i <= #b or carry > 0 do
    local v = (acc[i] or 0) + (b[i] or 0) * n + carry
    acc[i] = v % 10000000
    carry = math.floor(v / 10000000)
    i = i + 1
  end
end
local function big_gt(a, b)
  local la, lb = #a, #b
  while la > 1 and a[la] == 0 do la = la - 1 end
  while lb > 1 and b[lb] == 0 do lb = lb - 1 end
  if la ~= lb then return la > lb end
  for i = la, 1, -1 do
    if a[i] ~= b[i] then return a[i] > b[i] end
  end
  return false
end
local MAX_I64 = big('9223372036854775807')
"""

#: KEYS: [1] stream, [2] dead-letter stream, [3] supplier index, [4] active-state index,
#:       [5] lease (fence) key, [6] entry failure hash, then per session i:
#:       [7+3(i-1)] session hash, [8+3(i-1)] gate (the dedup set, or the leaf journal),
#:       [9+3(i-1)] the tree's sealed root (journal gate only).
#: ARGV: [1] group, [2] ack mode ('xackdel' | 'xack'), [3] session ttl, [4] dedup ttl,
#:       [5] fence token ('' = unfenced), [6] now (RFC3339Nano), [7] number of sessions, then per
#:       session: session id, n = #metadata values (0: never create; -1: none sent, the caller
#:       believes the session exists -- reply MISSING if it does not), n metadata values (full
#:       hash encoding, counters 0), gate ('1': relay hashes follow and the dedup set decides
#:       counting; '2': relay hash, leaf value pairs follow and the journal's HSETNX decides
#:       counting, a sealed journal counts nothing; '0': count every relay), g = #cu groups,
#:       then per group: cu (decimal), k, then k relay hashes (gate '1') or k pairs (gate '2').
#:       Then a = #ack ids, a ids; then d = #dead entries, per entry: f = #field values,
#:       f values.
#: Replies (all before any write): error 'FENCED'; error 'WRONGTYPE ...'; error for a bad
#: journal argument; {'LEGACY', i}; {'OVERFLOW', i}; {'MISSING', i}. Otherwise one
#: {created, counted, status} triple per session (status 0 counted, 1 terminal or sealed:
#: nothing counted, 2 missing and not creatable: nothing counted).
ACCOUNT_BATCH = (
    TERMINAL_TABLE
    + FENCE_PRELUDE
    + _BIGNUM
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
  local n = tonumber(ARGV[p + 1])
  s.ask = n < 0
  if s.ask then n = 0 end
  s.meta_from, s.meta_to, s.creatable = p + 2, p + 1 + n, n > 0
  p = p + 2 + n
  s.dedup_on, s.journal = ARGV[p] == '1', ARGV[p] == '2'
  local g = tonumber(ARGV[p + 1]); p = p + 2
  s.groups = {}
  local upper = 0
  for j = 1, g do
    local k = tonumber(ARGV[p + 1])
    local width = s.journal and 2 * k or (s.dedup_on and k or 0)
    local grp = {cu = ARGV[p], k = k, from = p + 2, to = p + 1 + width}
    s.groups[j] = grp
    upper = upper + tonumber(grp.cu) * k
    p = p + 2 + width
    if s.journal then
      local problem = journal_check(grp.from, grp.to)
      if problem then error(problem .. ' (session ' .. s.sid .. ', nothing changed)') end
    end
  end
  local t = redis.call('TYPE', s.key)['ok']
  if t == 'string' then return {'LEGACY', i} end
  if t == 'none' and s.ask then return {'MISSING', i} end
  if t ~= 'hash' and t ~= 'none' then
    error('unexpected redis type for session key ' .. s.key .. ': ' .. t .. ' (nothing changed)')
  end
  if s.dedup_on then need(s.dedup, 'set', 'none') end
  if s.journal then
    need(s.dedup, 'hash', 'none')
    s.sealed = journal_sealed(s.root)
  end
  s.exists = (t == 'hash')
  local total = '0'
  if s.exists then
    total = redis.call('HGET', s.key, 'total_compute_units') or '0'
    local count = redis.call('HGET', s.key, 'relay_count') or '0'
    if not string.match(total, '^-?%d+$') or not string.match(count, '^-?%d+$') then
      error('corrupt counters in ' .. s.key .. ' (nothing changed)')
    end
  end
  -- Exact overflow check, only when the double estimate comes near 2^63.
  if not s.sealed and string.sub(total, 1, 1) ~= '-' and tonumber(total) + upper >= 9.0e18 then
    local acc, seen = big(total), {}
    for _, grp in ipairs(s.groups) do
      local new = grp.k
      if s.dedup_on or s.journal then
        new = 0
        local step = s.journal and 2 or 1
        for r = grp.from, grp.to, step do
          local h = ARGV[r]
          local known
          if s.journal then
            known = redis.call('HEXISTS', s.dedup, h) == 1
          else
            known = redis.call('SISMEMBER', s.dedup, h) == 1
          end
          if not seen[h] and not known then new = new + 1 end
          seen[h] = true
        end
      end
      if new > 0 then big_add_mul(acc, grp.cu, new) end
    end
    if big_gt(acc, MAX_I64) then return {'OVERFLOW', i} end
  end
  sessions[i] = s
end
local nack = tonumber(ARGV[p]); local ack_from = p + 1; p = p + 1 + nack
local ndead = tonumber(ARGV[p]); p = p + 1
-- pass 2: writes
local out = {}
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
    local state = redis.call('HGET', s.key, 'state')
    if (state and TERMINAL[state]) or s.sealed then
      status = 1
    else
      for _, grp in ipairs(s.groups) do
        local new = grp.k
        if s.dedup_on then
          new = 0
          for r = grp.from, grp.to do new = new + redis.call('SADD', s.dedup, ARGV[r]) end
        elseif s.journal then
          new = journal_insert(s.dedup, grp.from, grp.to, ARGV[3])
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
      if s.dedup_on then redis.call('EXPIRE', s.dedup, ARGV[4]) end
      if counted > 0 then
        redis.call('HINCRBY', s.key, 'relay_count', counted)
        redis.call('HSET', s.key, 'last_updated_at', ARGV[6])
      end
    end
    redis.call('EXPIRE', s.key, ARGV[3])
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
if nack > 0 then
  local last = ack_from + nack - 1
  if ARGV[2] == 'xackdel' then
    redis.call('XACKDEL', KEYS[1], ARGV[1], 'DELREF', 'IDS', nack, unpack(ARGV, ack_from, last))
  else
    redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, ack_from, last))
    redis.call('XDEL', KEYS[1], unpack(ARGV, ack_from, last))
  end
  if redis.call('EXISTS', KEYS[6]) == 1 then
    redis.call('HDEL', KEYS[6], unpack(ARGV, ack_from, last))
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


class BatchAccounting:
    """Packs, runs and decodes :data:`ACCOUNT_BATCH` for one supplier."""

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
        self.keys = keys
        self.session_ttl = session_ttl_seconds
        self.fence = fence
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
        keys, args = self._pack(sessions, dedup_ttl_seconds or self.session_ttl, ack)
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
        out = []
        for i, s in enumerate(sessions):
            created, counted, status = (int(x) for x in reply[3 * i : 3 * i + 3])
            out.append(
                SessionOutcome(s.session_id, bool(created), counted, status, len(s.compute_units))
            )
        return out

    def _pack(
        self, sessions: Sequence[SessionRelays], dedup_ttl: int, ack: StreamAck | None
    ) -> tuple[list[str], list[Any]]:
        fence = self.fence
        index = self.keys.miner_sessions_index_key(self.supplier)
        keys: list[str] = [
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
        for s in sessions:
            journal = s.relay_bytes is not None
            session_key = self.keys.miner_session_key(self.supplier, s.session_id)
            keys += [
                session_key,
                self.keys.smst_leaves_key(self.supplier, s.session_id)
                if journal
                else self.keys.miner_dedup_session_key(s.session_id, self.supplier),
                self.keys.smst_root_key(self.supplier, s.session_id) if journal else session_key,
            ]
            args.append(s.session_id)
            if s.known:
                args.append(-1)
            elif s.create is not None:
                snapshot = s.create
                snapshot.created_at = snapshot.created_at or stamp
                snapshot.last_updated_at = stamp
                meta = encode_hash(snapshot, with_counters=True)
                args.append(2 * len(meta))
                for name, value in meta.items():
                    args += [name, value]
            else:
                args.append(0)
            args.append("2" if journal else "1" if s.dedup else "0")
            groups: dict[int, list[bytes]] = defaultdict(list)
            counts: dict[int, int] = defaultdict(int)
            for i, cu in enumerate(s.compute_units):
                if not 0 <= cu <= MAX_INT64:
                    raise ValueError(f"compute_units must be in [0, 2^63-1], got {cu}")
                counts[cu] += 1
                if journal:
                    assert s.relay_bytes is not None
                    relay_hash = s.hashes[i]
                    if len(relay_hash) != PATH_SIZE:
                        raise ValueError(f"relay hash must be 32 bytes, got {len(relay_hash)}")
                    groups[cu] += (relay_hash, encode_leaf_value(cu, s.relay_bytes[i]))
                elif s.dedup:
                    groups[cu].append(s.hashes[i])
            args.append(len(counts))
            for cu, k in counts.items():
                args += [cu, k]
                if journal or s.dedup:
                    args += groups[cu]
        if ack is None:
            args += [0, 0]
            return keys, args
        args.append(len(ack.entry_ids))
        args += list(ack.entry_ids)
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
