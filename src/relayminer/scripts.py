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

from relayminer.sessions import TERMINAL_STATES

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
