"""The Lua scripts behind shared/queueing.py: every change to the queues, the ready ring and the
drainer registry is one of these, so each is atomic and costs one round trip.

Keys (all under the Redis PREFIX, written P here; those of the ring under P<queue>:, written N):
- `P pending:<model>`: the model's job entries, oldest first.
- `N sched:<model>`: set while the model is in its owner's ready list (`N ready:<owner>`).
- `N ring`: owners whose ready list is not empty, in turn order. Round robin: a drainer takes
  the owner at the head, one batch of that owner's first model, and puts both back at the tails
  if they have more, so every owner with work gets a batch in turn, and within an owner every
  model.
- `N busy:<owner>`: drainers holding a batch of the owner's (token -> when): an owner at its
  cap of drainers is skipped, and the rest of the pool stays free for the others.
- `N drainers`: drain tasks sent or running (token = Celery task id -> last seen); a push sends
  a new one only while fewer than the pool's capacity run. `N idle`: drainers lingering for
  work; a push rings `N bell` (a list they block on) instead of sending a task.
- `N capacity`: the sum of the registered workers' processes (`N capacity-by-host`).
- `N backlog:<owner>`: entries waiting for the owner across its models (MAX_QUEUED_PER_USER).
- `P owner-of`: model -> owner, for putting back entries whose owner the caller does not know.
"""

from __future__ import annotations

from shared.quotas import QUOTA_LUA

# A counter that adds n and never goes below zero (a backlog: entries a script did not count
# going in, say pushed by an older version, must not drive it negative).
FLOORED = """
local function add_floored(key, n)
  if redis.call('INCRBY', key, n) < 0 then redis.call('SET', key, 0) end
end
"""

# Scheduling arguments: eleven ARGV values from `base` on (shared/queueing.py Route.sched). P
# prefixes the model's lists (pending, leases, owner-of); N, the broker queue's scheduler (ring,
# ready lists, marks, drainers, capacity): deployments or tests that share a Redis and its
# prefix but not a queue do not serve each other's rings.
SCHED = (
    FLOORED
    + """
local function sched_args(base)
  return {P = ARGV[base], model = ARGV[base + 1], owner = ARGV[base + 2],
          token = ARGV[base + 3], now = tonumber(ARGV[base + 4]),
          batch = tonumber(ARGV[base + 5]), fallback = tonumber(ARGV[base + 6]),
          cap = tonumber(ARGV[base + 7]), ttl = tonumber(ARGV[base + 8]),
          idle_ttl = tonumber(ARGV[base + 9]), N = ARGV[base + 10]}
end

local function owner_of(S, model, owner)
  if owner ~= '' then return owner end
  return redis.call('HGET', S.P .. 'owner-of', model) or model
end

-- Put a model with entries in its owner's ready list (and the owner in the ring) unless it is
-- there already. Returns 1 when it was not.
local function schedule(S, model, owner)
  if not redis.call('SET', S.N .. 'sched:' .. model, owner, 'NX') then return 0 end
  redis.call('HSET', S.P .. 'owner-of', model, owner)
  if redis.call('RPUSH', S.N .. 'ready:' .. owner, model) == 1 then
    redis.call('RPUSH', S.N .. 'ring', owner)
  end
  return 1
end

-- Entries waiting for one owner, across their models (MAX_QUEUED_PER_USER): kept by every
-- script that adds or takes entries, never below zero.
local function backlog_add(S, owner, n)
  add_floored(S.N .. 'backlog:' .. owner, n)
end

local function capacity(S)
  return tonumber(redis.call('GET', S.N .. 'capacity') or S.fallback)
end

-- Drainers one owner may hold at once: the setting, or (negative) all the pool but one.
local function owner_cap(S, pool)
  if S.cap >= 0 then return S.cap end
  return math.max(1, pool - 1)
end

local function capped(S, owner, cap)
  if cap <= 0 then return false end
  local busy = S.N .. 'busy:' .. owner
  redis.call('ZREMRANGEBYSCORE', busy, '-inf', S.now - S.ttl)
  return redis.call('ZCARD', busy) >= cap
end

-- After work became ready for `owner`: wake a lingering drainer (the bell), or register a new
-- one (the caller sends its task, id S.token) while fewer than the pool's capacity run. Nothing
-- when the owner's own drainers are at its cap: they take it after their batch. Returns the
-- new drainer's token, or ''.
local function summon(S, owner, newly, depth)
  if newly == 0 and depth <= S.batch then return '' end
  local pool = capacity(S)
  if capped(S, owner, owner_cap(S, pool)) then return '' end
  local idle = S.N .. 'idle'
  redis.call('ZREMRANGEBYSCORE', idle, '-inf', S.now - S.idle_ttl)
  if redis.call('ZCARD', idle) > 0 then
    redis.call('RPUSH', S.N .. 'bell', 1)
    redis.call('LTRIM', S.N .. 'bell', -16, -1)
    return ''
  end
  local drainers = S.N .. 'drainers'
  redis.call('ZREMRANGEBYSCORE', drainers, '-inf', S.now - S.ttl)
  if redis.call('ZCARD', drainers) >= pool then return '' end
  redis.call('ZADD', drainers, S.now, S.token)
  return S.token
end
"""
)

# A suspect entry (one whose batch died: shared by the lease scripts) is leased alone, and a
# batch stops before one; the entries not taken go back to the head in order.
ALONE = """
local function alone(ids, pending)
  local keep = #ids
  for i = 1, #ids do
    if string.byte(ids[i], 1) == 33 then keep = (i == 1) and 1 or (i - 1) break end
  end
  for i = #ids, keep + 1, -1 do redis.call('LPUSH', pending, ids[i]) end
  return {unpack(ids, 1, keep)}
end
"""

# What a push checks before it pushes, in this order (KEYS[1] the pending list, KEYS[2] the cache
# epoch): the epoch the caller assumed (when `check` is '1'), the caller's quotas (counted when
# all pass), the list's depth against `limit` (0: none), the caller's entries waiting across
# their models (key `backlog`) against `blimit` (0: none). Returns status, depth (or, refused for
# the backlog, the backlog), epoch, quota.
ADMISSION = (
    QUOTA_LUA
    + """
local function admission(limit, check, expected, kquota, aquota, quotas, backlog, blimit)
  local epoch = redis.call('GET', KEYS[2]) or ''
  local depth = redis.call('LLEN', KEYS[1])
  local quota = quota_state(kquota, aquota, quotas)
  local status = 'ok'
  local waiting = tonumber(blimit) > 0 and tonumber(redis.call('GET', backlog) or '0') or 0
  if check == '1' and epoch ~= expected then
    status = 'stale'
  elseif quota and quota[2] <= 0 then
    status = 'limited'
  elseif tonumber(limit) > 0 and depth >= tonumber(limit) then
    status = 'full'
  elseif tonumber(blimit) > 0 and waiting >= tonumber(blimit) then
    status = 'backlog'
    depth = waiting
  else
    quota_hit(kquota, aquota, quotas)
  end
  return status, depth, epoch, quota
end
"""
)

# Checks, push and scheduling in one round trip. KEYS: pending list, cache epoch, reply list,
# the owner's backlog counter, the caller's quota counters (2 per quota: shared/quotas.py).
# ARGV: max depth (0: no limit), check the epoch (1/0), the epoch expected, stop marker (1/0),
# max backlog (0: no limit), number of quotas, 4 values per quota, the eleven scheduling values,
# entries. A stale epoch, a spent quota, a full list or a full backlog pushes (and counts)
# nothing. With the marker flag, an empty entry goes onto the reply list whenever
# the caller must act before waiting (nothing pushed, or a drain task to send): its pipelined
# BLPOP returns at once. Returns {status, depth, current epoch, new drainer token or '',
# {the tightest quota}}.
PUSH = (
    ADMISSION
    + SCHED
    + """
local quotas = tonumber(ARGV[6])
local base = 7 + 4 * quotas
local S = sched_args(base)
local status, depth, epoch, quota = admission(
  ARGV[1], ARGV[2], ARGV[3], 5, 7, quotas, KEYS[4], ARGV[5])
local woke = ''
if status == 'ok' then
  local before = depth
  depth = redis.call('RPUSH', KEYS[1], unpack(ARGV, base + 11))
  local owner = owner_of(S, S.model, S.owner)
  backlog_add(S, owner, depth - before)
  woke = summon(S, owner, schedule(S, S.model, owner), depth)
end
if ARGV[4] == '1' and (status ~= 'ok' or woke ~= '') then
  redis.call('RPUSH', KEYS[3], '')
  redis.call('EXPIRE', KEYS[3], 60)
end
return {status, depth, epoch, woke, quota or {}}
"""
)

# The checks of a push without the push, for a job whose row is written before its id is
# queued: the quota is counted here. KEYS: pending list, cache epoch, the owner's backlog
# counter, quota counters. ARGV: max depth (0: no limit), check the epoch (1/0), the epoch
# expected, max backlog (0: no limit), number of quotas, 4 values per quota. Replies as PUSH.
ADMIT = (
    ADMISSION
    + """
local status, depth, epoch, quota = admission(
  ARGV[1], ARGV[2], ARGV[3], 4, 6, tonumber(ARGV[5]), KEYS[3], ARGV[4])
return {status, depth, epoch, '', quota or {}}
"""
)

# Entries put back in a model's list by someone who is not pushing (recovery): schedule the
# model if it has entries, and summon a drainer as a push would. KEYS: pending list. ARGV: the
# eleven scheduling values. Returns the new drainer's token or ''.
RESCHEDULE = (
    SCHED
    + """
local S = sched_args(1)
local depth = redis.call('LLEN', KEYS[1])
if depth == 0 then return '' end
local owner = owner_of(S, S.model, S.owner)
return summon(S, owner, schedule(S, S.model, owner), depth)
"""
)

# Finish a drainer's previous batch: delete its leases (and their entries in the `leases` zset),
# leave its owners' busy sets. ARGV from `first` on: lease key, owner, lease key, owner...
FINISH = """
local function finish(S, token, first, leases)
  for i = first, #ARGV, 2 do
    redis.call('DEL', ARGV[i])
    redis.call('ZREM', leases, ARGV[i])
    redis.call('ZREM', S.N .. 'busy:' .. ARGV[i + 1], token)
  end
end
"""

# A drainer's one round trip between batches: finish the previous batch, then take the next one
# from the ring: up to S.batch entries in all, in turn from the owner at the head of the ring
# (one model each time, its owner back at the tail), so that many models with a job or two each
# still make one batch. Owners at their cap are passed over (they stay in the ring); a model
# found without entries (another lease took them) leaves its owner's list; a model whose next
# entry is a suspect only starts a batch, which it then has alone. KEYS: cache epoch, leases
# zset, [broker queue]. ARGV: the eleven scheduling values (model and owner unused), the mode
# when nothing can be taken: 'work' (return), 'linger' (register as lingering and clear stale
# bells, or, when other tasks wait in the broker queue, leave the drainers) or 'retire' (leave
# the drainers), then the previous batch's lease keys and owners (FINISH).
# Returns {epoch, broker queue length when nothing was taken else 0, then per model taken:
# model, owner, number of entries, entries...}.
TAKE = (
    SCHED
    + ALONE
    + FINISH
    + """
local S = sched_args(1)
local mode = ARGV[12]
local epoch = redis.call('GET', KEYS[1]) or ''
finish(S, S.token, 13, KEYS[2])
redis.call('ZREM', S.N .. 'idle', S.token)
local drainers = S.N .. 'drainers'
redis.call('ZADD', drainers, S.now, S.token)
local ring = S.N .. 'ring'
local cap = owner_cap(S, capacity(S))

-- The next entries of the owner's first model with any (up to n), or nil. With `first` false,
-- a model whose head is a suspect is left for a batch of its own.
local function take_model(owner, n, first)
  local ready = S.N .. 'ready:' .. owner
  for _ = 1, redis.call('LLEN', ready) do
    local model = redis.call('LPOP', ready)
    local pending = S.P .. 'pending:' .. model
    local head = redis.call('LINDEX', pending, 0)
    if head and not first and string.byte(head, 1) == 33 then
      redis.call('RPUSH', ready, model)
    elseif head then
      local ids = alone(redis.call('LPOP', pending, n), pending)
      if redis.call('LLEN', pending) > 0 then
        redis.call('RPUSH', ready, model)
      else
        redis.call('DEL', S.N .. 'sched:' .. model)
      end
      return model, ids
    else
      redis.call('DEL', S.N .. 'sched:' .. model)
    end
  end
  return nil, nil
end

local function mine(owner)
  return cap > 0 and redis.call('ZSCORE', S.N .. 'busy:' .. owner, S.token)
end

local reply, total, idle_turns = {epoch, 0}, 0, 0
while total < S.batch and idle_turns < redis.call('LLEN', ring) do
  local owner = redis.call('LPOP', ring)
  local model, ids = nil, nil
  if mine(owner) or not capped(S, owner, cap) then
    model, ids = take_model(owner, S.batch - total, total == 0)
  end
  if redis.call('LLEN', S.N .. 'ready:' .. owner) > 0 then redis.call('RPUSH', ring, owner) end
  if model then
    idle_turns = 0
    backlog_add(S, owner, -#ids)
    local lease = S.P .. 'lease:' .. model .. ':' .. S.token
    redis.call('RPUSH', lease, unpack(ids))
    redis.call('ZADD', KEYS[2], S.now, lease)
    if cap > 0 then
      redis.call('ZADD', S.N .. 'busy:' .. owner, S.now, S.token)
      redis.call('EXPIRE', S.N .. 'busy:' .. owner, math.ceil(S.ttl))
    end
    reply[#reply + 1] = model
    reply[#reply + 1] = owner
    reply[#reply + 1] = #ids
    for i = 1, #ids do reply[#reply + 1] = ids[i] end
    total = total + #ids
    if string.byte(ids[1], 1) == 33 then break end
  else
    idle_turns = idle_turns + 1
  end
end
if total > 0 then return reply end
local waiting = KEYS[3] and redis.call('LLEN', KEYS[3]) or 0
if mode == 'linger' and waiting == 0 then
  redis.call('ZADD', S.N .. 'idle', S.now, S.token)
  redis.call('DEL', S.N .. 'bell')
elseif mode ~= 'work' then
  redis.call('ZREM', drainers, S.token)
end
return {epoch, waiting}
"""
)

# Take up to N more entries of one model into this task's lease (a straggler wait tops up a
# batch). KEYS: pending list, lease, leases zset, the owner's backlog counter. ARGV: n, now.
# Returns the entries.
LEASE = (
    ALONE
    + FLOORED
    + """
local ids = redis.call('LPOP', KEYS[1], ARGV[1])
if not ids then return {} end
ids = alone(ids, KEYS[1])
redis.call('RPUSH', KEYS[2], unpack(ids))
redis.call('ZADD', KEYS[3], ARGV[2], KEYS[2])
add_floored(KEYS[4], -#ids)
return ids
"""
)

# The drain task's time budget is spent: finish its batch and hand its place among the
# drainers to a fresh task (token S.token, the caller sends it) if the ring has work, else just
# leave. KEYS: leases zset. ARGV: the eleven scheduling values, the old token, then the batch's
# lease keys and owners (FINISH). Returns the new token or ''.
HAND_OFF = (
    SCHED
    + FINISH
    + """
local S = sched_args(1)
local old = ARGV[12]
finish(S, old, 13, KEYS[1])
redis.call('ZREM', S.N .. 'drainers', old)
redis.call('ZREM', S.N .. 'idle', old)
if redis.call('LLEN', S.N .. 'ring') == 0 then return '' end
redis.call('ZADD', S.N .. 'drainers', S.now, S.token)
return S.token
"""
)

# Put one lease's ids back at the head of its model's pending list, keeping their order, and
# schedule the model; its task leaves the owner's busy drainers. KEYS: lease, pending list,
# leases zset. ARGV: the eleven scheduling values (S.token: the lease's task).
RESTORE = (
    SCHED
    + """
local S = sched_args(1)
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
local owner = owner_of(S, S.model, '')
if #ids > 0 then
  for i = #ids, 1, -1 do redis.call('LPUSH', KEYS[2], ids[i]) end
  backlog_add(S, owner, #ids)
  schedule(S, S.model, owner)
end
redis.call('ZREM', S.N .. 'busy:' .. owner, S.token)
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], KEYS[1])
return #ids
"""
)

# A lease whose task died: who put it back and why. KEYS: lease, pending list, leases zset,
# deaths hash. ARGV: the eleven scheduling values (S.token: the dead task's). Its cause is what
# the worker's main process recorded (`mark_dead`: "time" for a hard time limit; the drainer
# itself for a batch that raised; ending in "+" when the batch held other models' entries
# too), else "lost" (the process died, cause unknown). An entry already suspect (it ran alone),
# or the only entry of a batch that did not merely lose its worker, is set aside (returned, not
# requeued): no further run. Every other entry goes back to the head, in order, as a suspect:
# it runs alone next time, so one poison job cannot take the honest jobs of its batch down with
# it. The dead task leaves its owner's busy drainers.
# Returns {cause, {set aside}, {requeued}}.
RECOVER = (
    SCHED
    + """
local S = sched_args(1)
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
local cause = redis.call('HGET', KEYS[4], KEYS[1]) or 'lost'
local shared = string.sub(cause, -1) == '+'
local owner = owner_of(S, S.model, '')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], KEYS[1])
redis.call('HDEL', KEYS[4], KEYS[1])
redis.call('ZREM', S.N .. 'busy:' .. owner, S.token)
local aside, back = {}, {}
for i = #ids, 1, -1 do
  if string.byte(ids[i], 1) == 33 or (#ids == 1 and cause ~= 'lost' and not shared) then
    table.insert(aside, 1, ids[i])
  else
    redis.call('LPUSH', KEYS[2], '!' .. ids[i])
    table.insert(back, 1, ids[i])
  end
end
if #back > 0 then
  backlog_add(S, owner, #back)
  schedule(S, S.model, owner)
end
return {cause, aside, back}
"""
)

# A worker host's processes join (or, with 0, leave) the pool's capacity. KEYS: capacity,
# capacity by host. ARGV: host, processes.
CAPACITY = """
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
else
  redis.call('HDEL', KEYS[2], ARGV[1])
end
local total = 0
for _, n in ipairs(redis.call('HVALS', KEYS[2])) do total = total + tonumber(n) end
if total > 0 then redis.call('SET', KEYS[1], total) else redis.call('DEL', KEYS[1]) end
return total
"""

# The reaper's backstop: work in the ring and no drainer seen for ARGV[12] seconds (their tasks
# were lost with a broker that restarted empty, say): register one more. ARGV: the ten
# scheduling values, the quiet time. Returns the new token or ''.
ENSURE = (
    SCHED
    + """
local S = sched_args(1)
local drainers = S.N .. 'drainers'
redis.call('ZREMRANGEBYSCORE', drainers, '-inf', S.now - S.ttl)
if redis.call('LLEN', S.N .. 'ring') == 0 then return '' end
local newest = redis.call('ZRANGE', drainers, -1, -1, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) > S.now - tonumber(ARGV[12]) then return '' end
redis.call('ZADD', drainers, S.now, S.token)
return S.token
"""
)
