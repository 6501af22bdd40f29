"""Every Lua script of relayminer, kept together.

Scripts run with EVALSHA through redis-py's registered scripts (loaded on first use, reloaded
after a NOSCRIPT reply, e.g. after SCRIPT FLUSH or a server restart). Each one is atomic: a
multi-step change to a session either happens completely or not at all.

Conventions:
- ``TYPE`` decides between the hash layout, a legacy JSON string and a missing key.
- Counters move only in the accounting script (:mod:`relayminer.sessions.accounting`), with
  HINCRBY of exact decimal strings: compute units are exact up to 2^63-1.
- Every script that writes a supplier's state checks the lease (fence) token first and the type
  of every key it writes before its first write: a failing script changes nothing.
- Scripts that must maintain a state index derive the old state's index key from a prefix in
  ARGV. All keys of a supplier live on one Redis instance; on a Redis Cluster the prefix holds
  the supplier's hash tag, so the derived key is in the script's slot (``relayminer.keys``).
"""

from __future__ import annotations

from relayminer.sessions.model import TERMINAL_STATES

TERMINAL_TABLE = (
    "local TERMINAL = {"
    + ", ".join(f"[{state.value!r}] = true" for state in sorted(TERMINAL_STATES))
    + "}\n"
)

#: Decimal-limb arithmetic for the exact int64 overflow check (limbs of 10^7, little endian:
#: every intermediate product stays far below 2^53).
BIGNUM_LUA = """
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

#: Lua helpers for packed arguments (local functions, no top-level code):
#: ``words(s)`` -> the space-separated words of ``s``, in a table;
#: ``members_unpack(blob, pos, k, out)`` -> the position after the ``k`` records read from
#: ``blob`` at ``pos`` (each a 4-byte big-endian length and that many bytes, appended to
#: ``out``), or nil when the blob is cut short.
PACKED_ARGS_LUA = """
local function words(s)
  local t = {}
  for w in string.gmatch(s, '%S+') do t[#t + 1] = w end
  return t
end
local function members_unpack(blob, pos, k, out)
  local size = #blob
  for _ = 1, k do
    if pos + 3 > size then return nil end
    local a, b, c, d = string.byte(blob, pos, pos + 3)
    local last = pos + 3 + ((a * 256 + b) * 256 + c) * 256 + d
    if last > size then return nil end
    out[#out + 1] = string.sub(blob, pos + 4, last)
    pos = last + 1
  end
  return pos
end
"""

#: KEYS[1] session hash. Returns {"hash", HGETALL} | {"string", GET} | {"none"} | {<type>}.
READ_SNAPSHOT = """
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'hash' then return {t, redis.call('HGETALL', KEYS[1])} end
if t == 'string' then return {t, redis.call('GET', KEYS[1])} end
return {t}
"""

#: Fencing prelude shared by every script that writes on behalf of a supplier owner. When a fence
#: token is given, the supplier's lease key must still hold it, or nothing is written.
FENCE_PRELUDE = """
local function fenced(key, token)
  if token == '' then return false end
  return redis.call('GET', key) ~= token
end
"""

#: Session-store scripts share one convention: KEYS[1] is the lease (fence) key and ARGV[1] the
#: fence token ('' = unfenced); every key a script writes has its type checked before the first
#: write, so a script that fails has changed nothing.
_STORE_PRELUDE = (
    FENCE_PRELUDE
    + """
if fenced(KEYS[1], ARGV[1]) then return redis.error_reply('FENCED lease lost') end
local function need(key, ...)
  local t = redis.call('TYPE', key)['ok']
  for _, ok in ipairs({...}) do if t == ok then return t end end
  error('unexpected redis type for ' .. key .. ': ' .. t .. ' (nothing changed)')
end
"""
)

#: KEYS[2] session hash, KEYS[3] supplier index, KEYS[4] state index.
#: ARGV[2] ttl, ARGV[3] session id, ARGV[4..] field/value pairs (counters included).
#: First write wins: returns 1 when created, 0 when the key already exists (hash or legacy).
CREATE_IF_ABSENT = (
    _STORE_PRELUDE
    + """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
need(KEYS[3], 'set', 'none'); need(KEYS[4], 'set', 'none')
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[3])
redis.call('EXPIRE', KEYS[4], ARGV[2])
return 1
"""
)

#: Upsert of a whole snapshot. KEYS[2] session hash, KEYS[3] supplier index, KEYS[4] new state
#: index. ARGV[2] ttl, ARGV[3] session id, ARGV[4] new state, ARGV[5] state index prefix,
#: ARGV[6] n = number of metadata values (2 x fields), ARGV[7..6+n] metadata pairs,
#: ARGV[7+n..10+n] the two counter pairs, ARGV[11+n..] stale optional fields to delete.
#: Existing hash: metadata only (counters untouched), stale fields deleted. Legacy string:
#: replaced by the full hash. Missing: full hash. Returns the previous state ('' if none).
SAVE_SNAPSHOT = (
    _STORE_PRELUDE
    + """
local n = tonumber(ARGV[6])
local meta = {}
for i = 7, 6 + n do meta[#meta + 1] = ARGV[i] end
local full = {}
for i = 7, 10 + n do full[#full + 1] = ARGV[i] end
local t = need(KEYS[2], 'hash', 'string', 'none')
local old = ''
if t == 'hash' then
  old = redis.call('HGET', KEYS[2], 'state') or ''
elseif t == 'string' then
  local ok, doc = pcall(cjson.decode, redis.call('GET', KEYS[2]))
  if ok and type(doc) == 'table' and type(doc['state']) == 'string' then old = doc['state'] end
end
need(KEYS[3], 'set', 'none'); need(KEYS[4], 'set', 'none')
if old ~= '' and old ~= ARGV[4] then need(ARGV[5] .. old, 'set', 'none') end
if t == 'hash' then
  redis.call('HSET', KEYS[2], unpack(meta))
  if #ARGV >= 11 + n then redis.call('HDEL', KEYS[2], unpack(ARGV, 11 + n)) end
else
  if t == 'string' then redis.call('DEL', KEYS[2]) end
  redis.call('HSET', KEYS[2], unpack(full))
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[3])
redis.call('EXPIRE', KEYS[4], ARGV[2])
if old ~= '' and old ~= ARGV[4] then redis.call('SREM', ARGV[5] .. old, ARGV[3]) end
return old
"""
)

#: KEYS[2] session hash, KEYS[3] new state index. ARGV[2] new state, ARGV[3] now,
#: ARGV[4] ttl, ARGV[5] state index prefix, ARGV[6] session id, ARGV[7..] more field/value
#: pairs to set with the state (a claim's root and tx hash).
#: Returns {0, old state} | {1, ''} missing | {2, ''} legacy string (caller migrates).
UPDATE_STATE = (
    _STORE_PRELUDE
    + """
local t = need(KEYS[2], 'hash', 'string', 'none')
if t == 'none' then return {1, ''} end
if t ~= 'hash' then return {2, ''} end
local old = redis.call('HGET', KEYS[2], 'state') or ''
if old ~= ARGV[2] then
  need(KEYS[3], 'set', 'none')
  if old ~= '' then need(ARGV[5] .. old, 'set', 'none') end
end
redis.call('HSET', KEYS[2], 'state', ARGV[2], 'last_updated_at', ARGV[3])
if #ARGV >= 7 then redis.call('HSET', KEYS[2], unpack(ARGV, 7)) end
redis.call('EXPIRE', KEYS[2], ARGV[4])
if old ~= ARGV[2] then
  redis.call('SADD', KEYS[3], ARGV[6])
  redis.call('EXPIRE', KEYS[3], ARGV[4])
  if old ~= '' then redis.call('SREM', ARGV[5] .. old, ARGV[6]) end
end
return {0, old}
"""
)

#: KEYS[2] session hash. ARGV[2] ttl, ARGV[3..] field/value pairs.
#: Writes only into an existing hash: returns 0 written, 1 missing, 2 legacy string.
UPDATE_EXISTING = (
    _STORE_PRELUDE
    + """
local t = need(KEYS[2], 'hash', 'string', 'none')
if t == 'none' then return 1 end
if t ~= 'hash' then return 2 end
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 0
"""
)

#: KEYS[2] session hash, KEYS[3] supplier index. ARGV[2] session id, ARGV[3..] every state index
#: key. Deletes the snapshot and its id from every index.
DELETE_SESSION = (
    _STORE_PRELUDE
    + """
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[2])
for i = 3, #ARGV do
  if redis.call('TYPE', ARGV[i])['ok'] == 'set' then redis.call('SREM', ARGV[i], ARGV[2]) end
end
return 1
"""
)

#: Fenced writes of the rebroadcast entries and the SMST housekeeping share this shape.
#: KEYS[1] lease key, ARGV[1] token; KEYS[2] hash, KEYS[3] index set. ARGV[2] ttl, ARGV[3]
#: field, ARGV[4] value, ARGV[5] index member.
REBROADCAST_PUT = (
    _STORE_PRELUDE
    + """
need(KEYS[2], 'hash', 'none'); need(KEYS[3], 'set', 'none')
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[5])
redis.call('EXPIRE', KEYS[3], ARGV[2])
return 1
"""
)

#: KEYS[1] lease key, KEYS[2] hash, KEYS[3] index. ARGV[1] token, ARGV[2] field ('' = none),
#: ARGV[3] index member. HDEL the entry, and drop the group from the index once its hash is empty
#: (then 2 is returned, else 1).
REBROADCAST_DELETE = (
    _STORE_PRELUDE
    + """
if ARGV[2] ~= '' then redis.call('HDEL', KEYS[2], ARGV[2]) end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[3])
  return 2
end
return 1
"""
)

#: KEYS[1] lease key, KEYS[2..] keys to delete. ARGV[1] token.
FENCED_DELETE = (
    _STORE_PRELUDE
    + """
return redis.call('DEL', unpack(KEYS, 2))
"""
)

#: KEYS[1] lease key, KEYS[2] key. ARGV[1] token, ARGV[2] value, ARGV[3] ttl.
FENCED_SET = (
    _STORE_PRELUDE
    + """
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""
)

#: KEYS[1] failure hash. ARGV[1] ttl, ARGV[2] cause, ARGV[3..] entry ids. Each field holds
#: "<count>\t<last cause>"; returns the new counts. (Advisory bookkeeping of the retry cap: not
#: fenced, never touches a counter.)
RECORD_FAILURES = """
local out = {}
for i = 3, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  local n = 1
  if v then n = (tonumber(string.match(v, '^(%d+)')) or 0) + 1 end
  redis.call('HSET', KEYS[1], ARGV[i], n .. '\\t' .. ARGV[2])
  out[#out + 1] = n
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return out
"""

#: Seal a tree for its claim: ``root`` := ``live_root`` (the empty root when there is none) unless
#: already sealed; later commits are refused. Returns the sealed 48-byte root.
#: KEYS: [1] root, [2] live_root, [3] nodes, [4] lease (fence) key.
#: ARGV: [1] ttl, [2] the empty root (48 zero bytes), [3] fence token.
SMST_SEAL = (
    FENCE_PRELUDE
    + """
if fenced(KEYS[4], ARGV[3]) then return redis.error_reply('FENCED lease lost') end
local sealed = redis.call('GET', KEYS[1])
if sealed and #sealed == 48 then return sealed end
local live = redis.call('GET', KEYS[2])
if not live or #live ~= 48 then live = ARGV[2] end
redis.call('SET', KEYS[1], live, 'EX', ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return live
"""
)

#: Fetch, in one round trip, the stored nodes a trie walk will need along each 32-byte path.
#: Mode 'insert' stops where an insertion stops (a leaf, or an extension that diverges); mode
#: 'closest' follows a closest-proof walk to its leaf and also fetches the leaf's sibling (the
#: proof's SiblingData). This only prefetches: the Python trie does the real walk and fetches
#: any node this missed.
#: KEYS: [1] nodes hash. ARGV: [1] root digest (48 raw bytes), [2] mode, [3..] paths.
#: Returns a flat list of digest (raw), preimage pairs.
SMST_PREFETCH = """
local PLACEHOLDER = string.rep('\\0', 48)
local HEX = {}  -- byte -> two lowercase hex digits (gsub with a table: ~2x string.format)
for i = 0, 255 do HEX[string.char(i)] = string.format('%02x', i) end
local closest = ARGV[2] == 'closest'
local function bit(path, i)
  local b = string.byte(path, math.floor(i / 8) + 1)
  return math.floor(b / 2 ^ (7 - i % 8)) % 2
end
local seen, out = {}, {}
local function fetch(d)
  local v = seen[d]
  if v == nil then
    v = redis.call('HGET', KEYS[1], (string.gsub(d, '.', HEX))) or false
    seen[d] = v
    if v then out[#out + 1] = d; out[#out + 1] = v end
  end
  return v
end
for a = 3, #ARGV do
  local path, d, depth, sib = ARGV[a], ARGV[1], 0, nil
  while d ~= PLACEHOLDER do
    local node = fetch(d)
    if not node then break end
    local kind = string.byte(node, 1)
    if kind == 1 then
      local nxt, other = string.sub(node, 2, 49), string.sub(node, 50, 97)
      if bit(path, depth) == 1 then nxt, other = other, nxt end
      if closest and nxt == PLACEHOLDER then nxt, other = other, nxt end
      sib, d, depth = other, nxt, depth + 1
    elseif kind == 2 then
      local s, e = string.byte(node, 2), string.byte(node, 3)
      if not closest then
        local ext = string.sub(node, 4, 35)
        for i = s, e - 1 do
          if bit(ext, i) ~= bit(path, i) then d = PLACEHOLDER; break end
        end
        if d == PLACEHOLDER then break end
      end
      d, depth = string.sub(node, 36, 83), e
    else
      break
    end
  end
  if closest and sib and sib ~= PLACEHOLDER then fetch(sib) end
end
return out
"""

#: Pending entries, read without counting a delivery (a restart or a reclaim by the miner itself
#: is not a delivery the entry caused: ``docs/failure-behaviour.md``).
#: KEYS[1] stream. ARGV[1] group, ARGV[2] consumer, ARGV[3] mode ('own' | 'claim'), ARGV[4]
#: start id, ARGV[5] count, ARGV[6] min idle ms (claim mode).
#: 'own': this consumer's pending entries after ARGV[4] (XPENDING + XRANGE). 'claim': XAUTOCLAIM
#: ... JUSTID (which does not increment the delivery counter) + XRANGE.
#: Returns {cursor, id1, deliveries1, fields1 | {} when deleted, id2, ...}; cursor '0-0': done.
READ_PENDING = """
local ids, cursor = {}, '0-0'
if ARGV[3] == 'own' then
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[4], '+', tonumber(ARGV[5]) + 1, ARGV[2])
  for _, e in ipairs(p) do
    if e[1] ~= ARGV[4] and #ids < tonumber(ARGV[5]) then ids[#ids + 1] = e[1] end
  end
  if #ids > 0 then cursor = ids[#ids] end
else
  local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[6], ARGV[4],
                       'COUNT', ARGV[5], 'JUSTID')
  cursor, ids = r[1], r[2]
end
local out = {cursor}
for _, id in ipairs(ids) do
  local info = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  local deliveries = 1
  if info[1] then deliveries = info[1][4] end
  local entry = redis.call('XRANGE', KEYS[1], id, id)
  out[#out + 1] = id
  out[#out + 1] = deliveries
  if entry[1] then out[#out + 1] = entry[1][2] else out[#out + 1] = {} end
end
return out
"""
