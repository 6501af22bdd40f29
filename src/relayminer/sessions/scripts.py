"""Every Lua script of relayminer, kept together.

Scripts run with EVALSHA through redis-py's registered scripts (loaded on first use, reloaded
after a NOSCRIPT reply, e.g. after SCRIPT FLUSH or a server restart). Each one is atomic: a
multi-step change to a session either happens completely or not at all.

Conventions:
- ``TYPE`` decides between the hash layout, a legacy JSON string and a missing key.
- Counters move only in :data:`INCREMENT_RELAY_COUNT` (and the relay worker's accounting script),
  with HINCRBY of the exact decimal string passed in ARGV: no Lua number ever touches them, so
  compute units are exact up to 2^63-1.
- Scripts that must maintain a state index derive the old state's index key from a prefix in
  ARGV. All keys of a supplier live on one Redis instance (the Go layout has no cluster hash
  tags either).
"""

from __future__ import annotations

from relayminer.sessions.model import TERMINAL_STATES

_TERMINAL_TABLE = (
    "local TERMINAL = {"
    + ", ".join(f"[{state.value!r}] = true" for state in sorted(TERMINAL_STATES))
    + "}\n"
)

#: KEYS[1] session hash. Returns {"hash", HGETALL} | {"string", GET} | {"none"} | {<type>}.
READ_SNAPSHOT = """
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'hash' then return {t, redis.call('HGETALL', KEYS[1])} end
if t == 'string' then return {t, redis.call('GET', KEYS[1])} end
return {t}
"""

#: KEYS[1] session hash, KEYS[2] supplier index, KEYS[3] state index.
#: ARGV[1] ttl, ARGV[2] session id, ARGV[3..] field/value pairs (counters included).
#: First write wins: returns 1 when created, 0 when the key already exists (hash or legacy).
CREATE_IF_ABSENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[1])
return 1
"""

#: Upsert of a whole snapshot. KEYS[1] session hash, KEYS[2] supplier index, KEYS[3] new state
#: index. ARGV[1] ttl, ARGV[2] session id, ARGV[3] new state, ARGV[4] state index prefix,
#: ARGV[5] n = number of metadata values (2 x fields), ARGV[6..5+n] metadata pairs,
#: ARGV[6+n..9+n] the two counter pairs, ARGV[10+n..] stale optional fields to delete.
#: Existing hash: metadata only (counters untouched), stale fields deleted. Legacy string:
#: replaced by the full hash. Missing: full hash. Returns the previous state ('' if none).
SAVE_SNAPSHOT = """
local n = tonumber(ARGV[5])
local meta = {}
for i = 6, 5 + n do meta[#meta + 1] = ARGV[i] end
local full = {}
for i = 6, 9 + n do full[#full + 1] = ARGV[i] end
local t = redis.call('TYPE', KEYS[1])['ok']
local old = ''
if t == 'hash' then
  old = redis.call('HGET', KEYS[1], 'state') or ''
  redis.call('HSET', KEYS[1], unpack(meta))
  if #ARGV >= 10 + n then redis.call('HDEL', KEYS[1], unpack(ARGV, 10 + n)) end
elseif t == 'string' then
  local ok, doc = pcall(cjson.decode, redis.call('GET', KEYS[1]))
  if ok and type(doc) == 'table' and type(doc['state']) == 'string' then old = doc['state'] end
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], unpack(full))
elseif t == 'none' then
  redis.call('HSET', KEYS[1], unpack(full))
else
  return redis.error_reply('unexpected redis type for session key ' .. KEYS[1] .. ': ' .. t)
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[1])
if old ~= '' and old ~= ARGV[3] then redis.call('SREM', ARGV[4] .. old, ARGV[2]) end
return old
"""

#: KEYS[1] session hash, KEYS[2] new state index. ARGV[1] new state, ARGV[2] now,
#: ARGV[3] ttl, ARGV[4] state index prefix, ARGV[5] session id.
#: Returns {0, old state} | {1, ''} missing | {2, ''} legacy string (caller migrates).
UPDATE_STATE = """
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then return {1, ''} end
if t ~= 'hash' then return {2, ''} end
local old = redis.call('HGET', KEYS[1], 'state') or ''
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'last_updated_at', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if old ~= ARGV[1] then
  redis.call('SADD', KEYS[2], ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  if old ~= '' then redis.call('SREM', ARGV[4] .. old, ARGV[5]) end
end
return {0, old}
"""

#: KEYS[1] session hash. ARGV[1] ttl, ARGV[2..] field/value pairs.
#: Writes only into an existing hash: returns 0 written, 1 missing, 2 legacy string.
UPDATE_EXISTING = """
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then return 1 end
if t ~= 'hash' then return 2 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 0
"""

#: KEYS[1] session hash. ARGV[1] compute units (exact decimal), ARGV[2] now, ARGV[3] ttl.
#: Returns 0 counted, 1 missing, 2 terminal (nothing moved), 3 legacy string (caller migrates).
#: total_compute_units is incremented first: an int64 overflow fails before anything moved.
INCREMENT_RELAY_COUNT = (
    _TERMINAL_TABLE
    + """
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then return 1 end
if t ~= 'hash' then return 3 end
local state = redis.call('HGET', KEYS[1], 'state')
if state and TERMINAL[state] then return 2 end
redis.call('HINCRBY', KEYS[1], 'total_compute_units', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'relay_count', 1)
redis.call('HSET', KEYS[1], 'last_updated_at', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 0
"""
)

#: Fencing prelude shared by every script that writes on behalf of a supplier owner. When a fence
#: token is given, the supplier's lease key must still hold it, or nothing is written.
_FENCE = """
local function fenced(key, token)
  if token == '' then return false end
  return redis.call('GET', key) ~= token
end
"""

#: The relay worker's exactly-once step for one batch (one atomic script):
#: for each relay, SADD its hash to the session's dedup set and count it only if it was new;
#: create each session's snapshot on first sight (first write wins, as CREATE_IF_ABSENT); skip
#: counting for terminal sessions; dead-letter the rejected entries; ack + delete every entry.
#:
#: KEYS: [1] stream, [2] dead-letter stream, [3] supplier index, [4] active-state index,
#:       [5] lease (fence) key, then per session i: [6+2(i-1)] session hash, [7+2(i-1)] dedup set.
#: ARGV: [1] group, [2] ack mode ('xackdel' | 'xack'), [3] session ttl, [4] dedup ttl,
#:       [5] fence token ('' = unfenced), [6] now (RFC3339Nano), [7] number of sessions, then per
#:       session: session id, n = #metadata values, n metadata values (full hash encoding, counters
#:       0), g = #cu groups, then per group: cu (decimal), k, k relay hashes.
#:       Then a = #ack ids, a ids; then d = #dead entries, per entry: f = #field values, f values.
#: Returns {'LEGACY', session index} before any write when a session key is a legacy string;
#: error 'FENCED' before any write when the lease moved; otherwise one {created, counted
#: relays, status} triple per session (status 0 counted, 1 terminal: nothing counted).
ACCOUNT_BATCH = (
    _TERMINAL_TABLE
    + _FENCE
    + """
if fenced(KEYS[5], ARGV[5]) then return redis.error_reply('FENCED lease lost') end
local nsess = tonumber(ARGV[7])
-- pass 1: parse and validate, no writes
local sessions = {}
local p = 8
for i = 1, nsess do
  local s = {sid = ARGV[p], key = KEYS[6 + 2 * (i - 1)], dedup = KEYS[7 + 2 * (i - 1)]}
  local n = tonumber(ARGV[p + 1])
  s.meta_from, s.meta_to = p + 2, p + 1 + n
  p = p + 2 + n
  local g = tonumber(ARGV[p]); p = p + 1
  s.groups = {}
  for j = 1, g do
    local k = tonumber(ARGV[p + 1])
    s.groups[j] = {cu = ARGV[p], from = p + 2, to = p + 1 + k}
    p = p + 2 + k
  end
  local t = redis.call('TYPE', s.key)['ok']
  if t == 'string' then return {'LEGACY', i} end
  if t ~= 'hash' and t ~= 'none' then
    return redis.error_reply('unexpected redis type for session key ' .. s.key .. ': ' .. t)
  end
  s.exists = (t == 'hash')
  sessions[i] = s
end
local nack = tonumber(ARGV[p]); local ack_from = p + 1; p = p + 1 + nack
local ndead = tonumber(ARGV[p]); p = p + 1
-- pass 2: writes
local out = {}
for i = 1, nsess do
  local s = sessions[i]
  local created = 0
  if not s.exists then
    redis.call('HSET', s.key, unpack(ARGV, s.meta_from, s.meta_to))
    redis.call('SADD', KEYS[3], s.sid)
    redis.call('EXPIRE', KEYS[3], ARGV[3])
    redis.call('SADD', KEYS[4], s.sid)
    redis.call('EXPIRE', KEYS[4], ARGV[3])
    created = 1
  end
  local state = redis.call('HGET', s.key, 'state')
  local counted, status = 0, 0
  if state and TERMINAL[state] then
    status = 1
  else
    for _, grp in ipairs(s.groups) do
      local new = 0
      for r = grp.from, grp.to do new = new + redis.call('SADD', s.dedup, ARGV[r]) end
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
    redis.call('EXPIRE', s.dedup, ARGV[4])
    if counted > 0 then
      redis.call('HINCRBY', s.key, 'relay_count', counted)
      redis.call('HSET', s.key, 'last_updated_at', ARGV[6])
    end
  end
  redis.call('EXPIRE', s.key, ARGV[3])
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
  if ARGV[2] == 'xackdel' then
    redis.call('XACKDEL', KEYS[1], ARGV[1], 'DELREF', 'IDS', nack,
               unpack(ARGV, ack_from, ack_from + nack - 1))
  else
    redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, ack_from, ack_from + nack - 1))
    redis.call('XDEL', KEYS[1], unpack(ARGV, ack_from, ack_from + nack - 1))
  end
end
return out
"""
)

#: Seal a tree for its claim: ``root`` := ``live_root`` (the empty root when there is none) unless
#: already sealed; later commits are refused. Returns the sealed 48-byte root.
#: KEYS: [1] root, [2] live_root, [3] nodes, [4] lease (fence) key.
#: ARGV: [1] ttl, [2] the empty root (48 zero bytes), [3] fence token.
SMST_SEAL = (
    _FENCE
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
