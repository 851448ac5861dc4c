"""The Lua scripts of the Redis spool (``streams.py``): each change is one atomic script, one
round trip, timed by Redis's clock (``TIME``) so drifting instances agree on backoffs.

The keys of a route ``R`` under ``spool.key_prefix`` ``P``:

``Pspool:q:R``      stream: the route's queue, entry ids ``N-0`` where N is the item's id
``Pspool:again:R``  stream: dead letters requeued by ``gateway spool retry``, delivered first
``Pspool:dead:R``   stream: the dead-letter list, with status (``st``) and error (``e``)
``Pspool:meta:R``   hash: item id → JSON ``{attempts, tries, next, status, error[, t]}``
``Pspool:lease:R``  string: the instance delivering the route, with an expiry
``Pspool:totals``   hash: ``items``, ``bytes`` and ``bytes:R``, dead letters included
``Pspool:routes``   set: every route that ever spooled (what the tools look at)
``Pspool:seq``      counter: the next item id, so ids are arrival order across routes
``Pspool:staged:K`` hash: push ``K`` staged, not committed; expires, never delivered
``Pspool:done:K``   string: push ``K`` (its ``Idempotency-Key``) is queued as item N; a
                    second write of ``K`` finds it and adds nothing (expires after a day)

An entry's fields: ``id``, ``m`` method, ``q`` raw query, ``f`` header block, ``b`` body,
``a`` accepted at, ``t`` queued at, ``s`` size. Both queue streams have the one consumer
group ``deliverers``. The totals, sequence and route set span routes: one primary, not a
Redis Cluster.
"""

from __future__ import annotations

__all__ = ["ADD", "BURY", "CLAIM", "COMMIT", "DONE", "GROUP", "PURGE", "PURGE_DEAD",
           "RELEASE", "RENEW", "REQUEUE", "RETRY", "SCRIPTS", "STAGE"]

GROUP = "deliverers"  # the one consumer group of every queue stream

_COMMON = """
local function now_seconds()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1e6
end
local function fields_of(entry)
  local f, flat = {}, entry[2]
  for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
  return f
end
local function meta_of(meta, id)
  local m = redis.call('HGET', meta, id)
  if not m then return {attempts = 0, tries = 0, next = 0} end
  return cjson.decode(m)
end
-- An entry of a queue stream onto the dead-letter stream, with why.
local function bury(src, dead, meta, group, entry, status, err, attempts, now)
  local f = fields_of(entry)
  redis.call('XADD', dead, '*', 'id', f.id, 'm', f.m, 'q', f.q, 'f', f.f, 'b', f.b,
             'a', f.a, 's', f.s, 'st', status, 'e', err, 'n', attempts,
             'd', string.format('%.6f', now))
  redis.call('XACK', src, group, entry[1])
  redis.call('XDEL', src, entry[1])
  redis.call('HDEL', meta, f.id)
end
local function forget(totals, route, size)
  redis.call('HINCRBY', totals, 'items', -1)
  redis.call('HINCRBY', totals, 'bytes', -size)
  redis.call('HINCRBY', totals, 'bytes:' .. route, -size)
end
"""

_ENQUEUE = """
-- Push ARGV-style fields into the route's queue stream and mark its key committed.
-- KEYS queue, totals, routes, seq, done. The new id, or 0 when the bounds leave no room.
local function enqueue(route, method, query, fields, body, most, max_bytes, group,
                       accepted_at, dedupe_seconds)
  local size = #fields + #body
  if most >= 0 then
    local t = redis.call('HMGET', KEYS[2], 'items', 'bytes')
    if (tonumber(t[1]) or 0) + 1 > most or (tonumber(t[2]) or 0) + size > max_bytes then
      return 0
    end
  end
  if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('XGROUP', 'CREATE', KEYS[1], group, '0', 'MKSTREAM')
  end
  local n = redis.call('INCR', KEYS[4])
  local now = string.format('%.6f', now_seconds())
  local accepted = now
  if accepted_at ~= '' then accepted = accepted_at end
  redis.call('XADD', KEYS[1], n .. '-0', 'id', n, 'm', method, 'q', query, 'f', fields,
             'b', body, 'a', accepted, 't', now, 's', size)
  redis.call('HINCRBY', KEYS[2], 'items', 1)
  redis.call('HINCRBY', KEYS[2], 'bytes', size)
  redis.call('HINCRBY', KEYS[2], 'bytes:' .. route, size)
  redis.call('SADD', KEYS[3], route)
  redis.call('SET', KEYS[5], n, 'EX', dedupe_seconds)
  return n
end
"""

# One phase (min_replicas 0). KEYS queue, totals, routes, seq, done. ARGV route, method,
# query, fields, body, max_items (-1: no bound, a push moved from the local spool),
# max_bytes, group, accepted_at ('' now), dedupe seconds. The id (the one it had when the
# key was committed before), or 0 when the bounds leave no room.
ADD = _COMMON + _ENQUEUE + """
local had = redis.call('GET', KEYS[5])
if had then return tonumber(had) end
return enqueue(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]),
               tonumber(ARGV[7]), ARGV[8], ARGV[9], ARGV[10])
"""

# Phase one (min_replicas > 0), followed by WAIT. KEYS staged, done. ARGV method, query,
# fields, body, accepted_at ('' now), staged ms. 0 when staged; the item's id when the key
# was committed already (nothing staged).
STAGE = _COMMON + """
local had = redis.call('GET', KEYS[2])
if had then return tonumber(had) end
local accepted = ARGV[5]
if accepted == '' then accepted = string.format('%.6f', now_seconds()) end
redis.call('HSET', KEYS[1], 'm', ARGV[1], 'q', ARGV[2], 'f', ARGV[3], 'b', ARGV[4],
           'a', accepted)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 0
"""

# Phase two, after the staged push was replicated, followed by WAIT. KEYS queue, totals,
# routes, seq, done, staged. ARGV route, max_items, max_bytes, group, dedupe seconds.
# The id (the one it had when committed before); 0 when the bounds leave no room; -1 when
# nothing is staged (expired, or lost with a primary): the push is not stored.
COMMIT = _COMMON + _ENQUEUE + """
local had = redis.call('GET', KEYS[5])
if had then redis.call('DEL', KEYS[6]); return tonumber(had) end
local s = redis.call('HMGET', KEYS[6], 'm', 'q', 'f', 'b', 'a')
if not s[1] then return -1 end
local n = enqueue(ARGV[1], s[1], s[2], s[3], s[4], tonumber(ARGV[2]), tonumber(ARGV[3]),
                  ARGV[4], s[5], ARGV[5])
if n > 0 then redis.call('DEL', KEYS[6]) end
return n
"""

# KEYS lease, again, queue, meta, dead. ARGV owner, lease_ms, group, batch, max_age,
# deliver ('1', or '0': only expire, for a route no longer configured).
# {expired, source (0 none, 1 again, 2 queue), entries, metas}. The caller holds the lease
# on return with a source; nothing is returned while another owner holds it.
CLAIM = _COMMON + """
local owner, group, batch = ARGV[1], ARGV[3], tonumber(ARGV[4])
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= owner then return {0, 0} end
local now = now_seconds()
local cutoff = now - tonumber(ARGV[5])
local expired, waiting = 0, 0
for i = 2, 3 do
  while redis.call('EXISTS', KEYS[i]) == 1 and expired < batch do
    local head = redis.call('XRANGE', KEYS[i], '-', '+', 'COUNT', 1)[1]
    if not head then break end
    local f = fields_of(head)
    local m = meta_of(KEYS[4], f.id)
    if tonumber(m.t or f.t) >= cutoff then waiting = waiting + 1; break end
    bury(KEYS[i], KEYS[5], KEYS[4], group, head, '',
         'undelivered after max_age_seconds=' .. ARGV[5], m.attempts, now)
    expired = expired + 1
  end
end
if waiting == 0 or ARGV[6] ~= '1' then
  if holder then redis.call('DEL', KEYS[1]) end
  return {expired, 0}
end
for i = 2, 3 do
  if redis.call('EXISTS', KEYS[i]) == 1 and redis.call('XLEN', KEYS[i]) > 0 then
    -- What a former holder left pending is ours now: it comes first, in order.
    local taken = redis.pcall('XAUTOCLAIM', KEYS[i], group, owner, 0, '0-0', 'COUNT', 100)
    if type(taken) == 'table' and taken.err then
      -- The group is gone (destroyed by hand): make it again, from the first entry.
      redis.call('XGROUP', 'CREATE', KEYS[i], group, '0')
    end
    local mine = redis.call('XREADGROUP', 'GROUP', group, owner, 'COUNT', batch,
                            'STREAMS', KEYS[i], '0')[1][2]
    local entries = {}
    for _, e in ipairs(mine) do
      if e[2] then table.insert(entries, e) else redis.call('XACK', KEYS[i], group, e[1]) end
    end
    if #entries == 0 then
      local new = redis.call('XREADGROUP', 'GROUP', group, owner, 'COUNT', batch,
                             'STREAMS', KEYS[i], '>')
      if new then entries = new[1][2] end
    end
    if #entries > 0 then
      redis.call('SET', KEYS[1], owner, 'PX', ARGV[2])
      local metas = {}
      for j, e in ipairs(entries) do
        metas[j] = redis.call('HGET', KEYS[4], fields_of(e).id) or ''
      end
      local head = meta_of(KEYS[4], fields_of(entries[1]).id)
      if head.next > now then return {expired, 0} end  -- nothing overtakes a backoff
      -- A head that failed before probes alone, not a whole batch.
      if head.tries > 0 then entries, metas = {entries[1]}, {metas[1]} end
      return {expired, i - 1, entries, metas}
    end
  end
end
if holder then redis.call('DEL', KEYS[1]) end
return {expired, 0}
"""

# KEYS lease. ARGV owner, lease_ms. 1 while the lease is the owner's.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS source, meta, totals. ARGV group, entry id, item id, size, route. Delivered (or a
# push whose replicas fell short): gone for good.
DONE = _COMMON + """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if redis.call('XDEL', KEYS[1], ARGV[2]) == 1 then forget(KEYS[3], ARGV[5], ARGV[4]) end
redis.call('HDEL', KEYS[2], ARGV[3])
return 1
"""

# KEYS source, meta, dead. ARGV group, entry id, wait, error, status, counted (0/1),
# max_attempts. 1 when that was the last attempt and the item is a dead letter now.
RETRY = _COMMON + """
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])[1]
if not entry then return 0 end
local now = now_seconds()
local id = fields_of(entry).id
local m = meta_of(KEYS[2], id)
m.attempts = m.attempts + tonumber(ARGV[6])
m.tries = m.tries + 1
m.next = now + tonumber(ARGV[3])
m.status, m.error = ARGV[5], ARGV[4]
if m.attempts >= tonumber(ARGV[7]) then
  bury(KEYS[1], KEYS[3], KEYS[2], ARGV[1], entry, ARGV[5],
       ARGV[4] .. ' (after ' .. m.attempts .. ' attempts)', m.attempts, now)
  return 1
end
redis.call('HSET', KEYS[2], id, cjson.encode(m))
return 0
"""

# KEYS source, meta, dead. ARGV group, entry id, status, error. The backend refused it.
BURY = _COMMON + """
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])[1]
if not entry then return 0 end
local m = meta_of(KEYS[2], fields_of(entry).id)
bury(KEYS[1], KEYS[3], KEYS[2], ARGV[1], entry, ARGV[3], ARGV[4], m.attempts, now_seconds())
return 1
"""

# KEYS dead, again, lease, meta, source. ARGV group, entry id, dead ('1': the entry is a
# dead letter, else a waiting item of source). Fresh attempts and age; 0 when the route is
# being delivered right now (a waiting item) or the entry is gone.
REQUEUE = _COMMON + """
local now = now_seconds()
if ARGV[3] ~= '1' then
  if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
  local entry = redis.call('XRANGE', KEYS[5], ARGV[2], ARGV[2])[1]
  if not entry then return 0 end
  redis.call('HSET', KEYS[4], fields_of(entry).id, cjson.encode(
    {attempts = 0, tries = 0, next = 0, t = now}))
  return 1
end
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])[1]
if not entry then return 0 end
local f = fields_of(entry)
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[2], ARGV[1], '0', 'MKSTREAM')
end
redis.call('XADD', KEYS[2], '*', 'id', f.id, 'm', f.m, 'q', f.q, 'f', f.f, 'b', f.b,
           'a', f.a, 't', string.format('%.6f', now), 's', f.s)
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""

# KEYS stream, totals, meta, lease. ARGV group, entry id, route, dead ('1' or '0').
# A waiting item is left alone while the route is being delivered.
PURGE = _COMMON + """
if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])[1]
if not entry then return 0 end
local f = fields_of(entry)
if ARGV[4] ~= '1' then redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[3], f.id)
forget(KEYS[2], ARGV[3], tonumber(f.s))
return 1
"""

# KEYS dead, totals. ARGV route, count. Drops up to count dead letters; how many.
PURGE_DEAD = _COMMON + """
local found = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', tonumber(ARGV[2]))
for _, entry in ipairs(found) do
  redis.call('XDEL', KEYS[1], entry[1])
  forget(KEYS[2], ARGV[1], tonumber(fields_of(entry).s))
end
return #found
"""

SCRIPTS = {"ADD": ADD, "BURY": BURY, "CLAIM": CLAIM, "COMMIT": COMMIT, "DONE": DONE, "PURGE": PURGE,
           "PURGE_DEAD": PURGE_DEAD, "RELEASE": RELEASE, "RENEW": RENEW, "REQUEUE": REQUEUE,
           "RETRY": RETRY, "STAGE": STAGE}
