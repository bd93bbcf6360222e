"""The Lua scripts the Redis adapter runs server-side (each atomic, one hash slot).

A Lua script is atomic but not rolled back when a command inside it fails, so each
script checks everything that could fail before its first write. Out of memory
(``maxmemory`` with ``noeviction``), Redis refuses a script's first write and lets
the later ones through (so as not to cut a script in half): with every check
before the first write, a full server refuses an append whole. No ``#!lua`` shebang,
so the scripts also run on Redis 6.2 (the oldest with XAUTOCLAIM and exclusive
XRANGE bounds, which the adapter needs).
"""

from __future__ import annotations

__all__ = [
    "APPEND",
    "DEAD_LETTER",
    "FORGET_CONSUMER",
    "PROJECTION_APPLY",
    "SNAPSHOT_SAVE",
    "TRIM_FEED",
]

EVENT_ARGS = 8
"""Values per event in APPEND's ARGV: type, schema, data, event_id, correlation_id,
causation_id, recorded_at, extra."""

APPEND = """
-- Append events to an aggregate stream and to its partition feed, atomically.
-- KEYS[1] aggregate stream, KEYS[2] partition feed, KEYS[3] (optional) a stream
-- index that lists the stream if this append creates it (all in one hash slot)
-- ARGV[1] expected version (-1 = any), ARGV[2] event count n, ARGV[3] stream id,
-- then 8 values per event: type, schema, data, event_id, correlation_id,
-- causation_id, recorded_at, extra.
-- Returns {1, version, feed ids...} appended; {2, version, feed ids...} a retry of
-- an applied append (nothing written); {0, actual version} conflict;
-- {3, version, event id} event ids of an earlier append in another batch;
-- {4, version, error} the aggregate stream refused an entry (written to by another
-- client): nothing written.
local stream, feed = KEYS[1], KEYS[2]
local expected = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local version = redis.call('XLEN', stream)

local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return false
end

-- Is this append a retry of one applied at first_version? Compare event ids.
local function earlier(first_version)
  local entries = redis.call('XRANGE', stream, first_version .. '-0',
                             (first_version + n - 1) .. '-0')
  if #entries == 0 or field(entries[1][2], 'event_id') ~= ARGV[7] then
    return nil
  end
  local out = {2, first_version + n - 1}
  for i = 1, n do
    local entry = entries[i]
    if entry == nil or field(entry[2], 'event_id') ~= ARGV[7 + (i - 1) * 8] then
      return {3, first_version, ARGV[7]}
    end
    out[#out + 1] = field(entry[2], 'feed')
  end
  return out
end

if expected >= 0 then
  if version ~= expected then
    if version > expected then
      local found = earlier(expected + 1)
      if found then return found end
    end
    return {0, version}
  end
elseif version >= n then
  local found = earlier(version - n + 1)
  if found then return found end
end

-- Writes start here; nothing below can fail on a stream nobody tampered with.
-- One that another client wrote to (an entry with an id above "<version>-0")
-- refuses the first stream XADD after its feed XADD: that feed entry is deleted
-- again, in this same atomic script, so no subscriber ever sees half an append.
-- The index entry of a stream this append creates is the first write, so that a
-- server that refuses it (full, or a key of another type) has written nothing.
local listed = false
if #KEYS > 2 and version == 0 then
  listed = redis.call('XADD', KEYS[3], '*', 'stream', ARGV[3])
end
local out = {1, version + n}
for i = 1, n do
  local o = 4 + (i - 1) * 8
  local v = version + i
  local id = redis.call('XADD', feed, '*',
    'stream', ARGV[3], 'version', v, 'type', ARGV[o], 'schema', ARGV[o + 1],
    'data', ARGV[o + 2], 'event_id', ARGV[o + 3], 'correlation_id', ARGV[o + 4],
    'causation_id', ARGV[o + 5], 'recorded_at', ARGV[o + 6], 'extra', ARGV[o + 7])
  out[#out + 1] = id
  local added = redis.pcall('XADD', stream, v .. '-0',
    'type', ARGV[o], 'schema', ARGV[o + 1], 'data', ARGV[o + 2],
    'event_id', ARGV[o + 3], 'correlation_id', ARGV[o + 4],
    'causation_id', ARGV[o + 5], 'recorded_at', ARGV[o + 6], 'extra', ARGV[o + 7],
    'feed', id)
  if type(added) == 'table' and added.err then
    for j = 3, #out do redis.call('XDEL', feed, out[j]) end
    if listed then redis.call('XDEL', KEYS[3], listed) end
    for j = 1, i - 1 do redis.call('XDEL', stream, (version + j) .. '-0') end
    return {4, version, added.err}
  end
end
return out
"""

TRIM_FEED = """
-- Trim a partition feed below what every consumer group has acknowledged.
-- KEYS[1] partition feed. Returns the number of entries removed.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end  -- nobody consumes yet: keep everything

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local floor_ms, floor_seq = nil, nil
for _, info in ipairs(groups) do
  local g = {}
  for i = 1, #info, 2 do g[info[i]] = info[i + 1] end
  local ms, seq
  if tonumber(g['pending']) > 0 then
    -- The oldest entry still pending on some consumer must stay.
    local summary = redis.call('XPENDING', KEYS[1], g['name'])
    ms, seq = parse(summary[2])
  else
    -- Everything up to the last delivered entry is acknowledged.
    ms, seq = parse(g['last-delivered-id'])
    seq = seq + 1
  end
  if floor_ms == nil or ms < floor_ms or (ms == floor_ms and seq < floor_seq) then
    floor_ms, floor_seq = ms, seq
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%.0f-%.0f', floor_ms, floor_seq))
"""

DEAD_LETTER = """
-- Move a pending feed entry to a dead-letter stream and acknowledge it.
-- KEYS[1] partition feed, KEYS[2] dead-letter stream (same hash slot)
-- ARGV[1] group, ARGV[2] entry id, then field/value pairs of the dead letter.
-- Returns 0 when the entry is no longer pending (acknowledged elsewhere).
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #pending == 0 then return 0 end
local args = {}
for i = 3, #ARGV do args[#args + 1] = ARGV[i] end
redis.call('XADD', KEYS[2], '*', unpack(args))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

FORGET_CONSUMER = """
-- Delete a consumer from a feed's group unless entries are pending on it (deleting
-- it then would leave them pending on nobody, never to be claimed by name).
-- KEYS[1] partition feed. ARGV[1] group, ARGV[2] consumer.
-- Returns 1 deleted (or never there), 0 kept: entries are pending on it.
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if type(pending) ~= 'table' then return 1 end  -- no feed or no group: nothing to forget
if #pending > 0 then return 0 end
redis.pcall('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

PROJECTION_APPLY = """
-- Apply an update to a read-model hash unless its position was applied already.
-- KEYS[1] hash. ARGV[1] position, ARGV[2] number s of fields to set, then s
-- field/value pairs, then field/increment pairs.
-- Returns 1 applied, 0 already applied, {field, value} a non-integer to increment.
local position = tonumber(ARGV[1])
local applied = tonumber(redis.call('HGET', KEYS[1], '_position') or '0')
if position <= applied then return 0 end
local set_end = 2 + 2 * tonumber(ARGV[2])
local set = {}
for i = 3, set_end, 2 do set[ARGV[i]] = ARGV[i + 1] end

local function integer(v)
  return v == '0' or (#v <= 20 and string.match(v, '^-?[1-9]%d*$') ~= nil)
end
-- HINCRBY fails on a non-integer: check them all before the first write.
for i = set_end + 1, #ARGV, 2 do
  local v = set[ARGV[i]]
  if v == nil then v = redis.call('HGET', KEYS[1], ARGV[i]) end
  if v and not integer(v) then return {ARGV[i], v} end
end
local args = {'_position', ARGV[1]}
for i = 3, set_end do args[#args + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(args))
for i = set_end + 1, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
"""

SNAPSHOT_SAVE = """
-- Keep a snapshot unless one of a higher or equal version is kept.
-- KEYS[1] snapshot hash; ARGV[1] version, ARGV[2] state. Returns 1 kept, 0 not.
local kept = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if tonumber(ARGV[1]) <= kept then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'state', ARGV[2])
return 1
"""
