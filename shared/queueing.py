"""Per-model job queues on Redis, drained in batches by coalesced Celery wake-up tasks.

Why not one Celery task per job: a single-row predict costs far more than its share of a batched
call, and Celery itself tops out near 200-300 tasks/s here (docs/measurements.md, "Celery's task
throughput ceiling"). So job ids wait in a Redis list per model; the web tier sends a
`drain_model` wake-up only when none is pending
(`SET wake NX`), and the woken task moves batches of ids into a lease, predicts them together
and deletes the lease. A lease whose task died is put back: at once by the redelivered task (the
lease is named after the Celery task id) or, failing that, after LEASE_TTL_S by anyone.

PostgreSQL stays the durable record: if Redis loses these lists, the reaper re-pushes every job
still `queued` (or `running` past its deadline) from the jobs table.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis
from celery import Celery
from redis.exceptions import NoScriptError

from shared.cache_epoch import EPOCH_KEY, Stale
from shared.celery_config import DRAIN_MODEL
from shared.quotas import QUOTA_LUA, Quota, QuotaSpent, state
from shared.redis_client import MAX_BLOCK_S, PREFIX, roundtrip

WAKE_TTL_S = 10  # refreshed after every batch; a dead drainer blocks wake-ups this long at most
LEASES = f"{PREFIX}leases"  # sorted set: lease key -> time it was taken

# A suspect entry (one whose batch died: shared by _LEASE and _NEXT) is leased alone, and a
# batch stops before one; the entries not taken go back to the head in order. Costs a scan of
# the few entries leased, and a push back only when a suspect is among them.
_ALONE = """
local function alone(ids, pending)
  local keep = #ids
  for i = 1, #ids do
    if string.byte(ids[i], 1) == 33 then keep = (i == 1) and 1 or (i - 1) break end
  end
  for i = #ids, keep + 1, -1 do redis.call('LPUSH', pending, ids[i]) end
  return {unpack(ids, 1, keep)}
end
"""

# Move up to N ids from the pending list into a lease list, recording when it was taken. The
# reply starts with the cache epoch (KEYS[4]), which the batch's model lookup needs anyway, then,
# when nothing was leased, how many messages wait in the broker queue KEYS[5] (if given): other
# models' wake-ups, for which the drainer should free its process rather than linger.
_LEASE = (
    _ALONE
    + """
local epoch = redis.call('GET', KEYS[4]) or ''
local ids = redis.call('LPOP', KEYS[1], ARGV[1])
if not ids then return {epoch, KEYS[5] and redis.call('LLEN', KEYS[5]) or 0} end
ids = alone(ids, KEYS[1])
redis.call('RPUSH', KEYS[2], unpack(ids))
redis.call('ZADD', KEYS[3], ARGV[2], KEYS[2])
table.insert(ids, 1, 0)
table.insert(ids, 1, epoch)
return ids
"""
)

# What a push checks before it pushes, in this order (KEYS[1] the pending list, KEYS[2] the cache
# epoch): the epoch the caller assumed (when `check` is '1'), the caller's quotas (counted when
# all pass), the list's depth against `limit` (0: none). Returns status, depth, epoch, quota.
_ADMISSION = (
    QUOTA_LUA
    + """
local function admission(limit, check, expected, kquota, aquota, quotas)
  local epoch = redis.call('GET', KEYS[2]) or ''
  local depth = redis.call('LLEN', KEYS[1])
  local quota = quota_state(kquota, aquota, quotas)
  local status = 'ok'
  if check == '1' and epoch ~= expected then
    status = 'stale'
  elseif quota and quota[2] <= 0 then
    status = 'limited'
  elseif tonumber(limit) > 0 and depth >= tonumber(limit) then
    status = 'full'
  else
    quota_hit(kquota, aquota, quotas)
  end
  return status, depth, epoch, quota
end
"""
)

# Checks, push and wake flags in one round trip. KEYS: pending list, cache epoch, reply list,
# the caller's quota counters (2 per quota: shared/quotas.py), wake flags of slots 0..n-1. ARGV:
# max depth (0: no limit), wake TTL, batch size, check the epoch (1/0), the epoch expected, stop
# marker (1/0), number of quotas, 4 values per quota, entries. A stale epoch, a spent quota or
# a full list pushes (and counts) nothing. Slot 0's flag is taken when free, slot k's only when
# more than k batches wait. With the marker flag, an empty entry goes onto the reply list
# whenever the caller must act before waiting (nothing pushed, or drainers to wake): its
# pipelined BLPOP returns at once. Returns {status, depth, current epoch, {slots woken},
# {the tightest quota}}.
_PUSH = (
    _ADMISSION
    + """
local quotas = tonumber(ARGV[7])
local wakes = 4 + 2 * quotas
local status, depth, epoch, quota = admission(ARGV[1], ARGV[4], ARGV[5], 4, 8, quotas)
local woke = {}
if status == 'ok' then
  depth = redis.call('RPUSH', KEYS[1], unpack(ARGV, 8 + 4 * quotas))
  for slot = 0, #KEYS - wakes do
    if slot > 0 and depth <= tonumber(ARGV[3]) * slot then break end
    if redis.call('SET', KEYS[wakes + slot], 1, 'NX', 'EX', ARGV[2]) then woke[#woke + 1] = slot end
  end
end
if ARGV[6] == '1' and (status ~= 'ok' or #woke > 0) then
  redis.call('RPUSH', KEYS[3], '')
  redis.call('EXPIRE', KEYS[3], 60)
end
return {status, depth, epoch, woke, quota or {}}
"""
)

# The checks of a push without the push, for a job whose row is written before its id is
# queued: the quota is counted here. KEYS: pending list, cache epoch, quota counters. ARGV: max
# depth (0: no limit), check the epoch (1/0), the epoch expected, number of quotas, 4 values per
# quota. Replies as _PUSH does.
_ADMIT = (
    _ADMISSION
    + """
local status, depth, epoch, quota = admission(ARGV[1], ARGV[2], ARGV[3], 3, 5, tonumber(ARGV[4]))
return {status, depth, epoch, {}, quota or {}}
"""
)
_PUSH_CHUNK = 1000  # entries per script call (Lua's unpack has a stack limit)

# After a batch: drop its lease, keep the wake flag, and lease the next ids (one round trip).
# KEYS: lease, pending list, leases zset, wake flag, cache epoch, [broker queue]. ARGV: n, now,
# wake TTL. Replies as _LEASE.
_NEXT = (
    _ALONE
    + """
local epoch = redis.call('GET', KEYS[5]) or ''
redis.call('DEL', KEYS[1])
redis.call('EXPIRE', KEYS[4], ARGV[3])
local ids = redis.call('LPOP', KEYS[2], ARGV[1])
if not ids then
  redis.call('ZREM', KEYS[3], KEYS[1])
  return {epoch, KEYS[6] and redis.call('LLEN', KEYS[6]) or 0}
end
ids = alone(ids, KEYS[2])
redis.call('RPUSH', KEYS[1], unpack(ids))
redis.call('ZADD', KEYS[3], ARGV[2], KEYS[1])
table.insert(ids, 1, 0)
table.insert(ids, 1, epoch)
return ids
"""
)

# Put one lease's ids back at the head of its model's pending list, keeping their order.
_RESTORE = """
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
if #ids > 0 then
  for i = #ids, 1, -1 do redis.call('LPUSH', KEYS[2], ids[i]) end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], KEYS[1])
return #ids
"""


# A lease whose task died: who put it back and why. KEYS: lease, pending list, leases zset,
# deaths hash. Its cause is what the worker's main process recorded (`mark_dead`: "time" for a
# hard time limit; the drainer itself for a batch that raised), else "lost" (the process died,
# cause unknown). An entry already suspect (it ran alone), or the only entry of a batch that did
# not merely lose its worker, is set aside (returned, not requeued): no further run. Every
# other entry goes back to the head, in order, as a suspect: it runs alone next time, so one
# poison job cannot take the honest jobs of its batch down with it. Returns {cause, {set aside},
# {requeued}}.
_RECOVER = """
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
local cause = redis.call('HGET', KEYS[4], KEYS[1]) or 'lost'
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], KEYS[1])
redis.call('HDEL', KEYS[4], KEYS[1])
local aside, back = {}, {}
for i = #ids, 1, -1 do
  if string.byte(ids[i], 1) == 33 or (#ids == 1 and cause ~= 'lost') then
    table.insert(aside, 1, ids[i])
  else
    redis.call('LPUSH', KEYS[2], '!' .. ids[i])
    table.insert(back, 1, ids[i])
  end
end
return {cause, aside, back}
"""

# One owner's running drain tasks (a sorted set: task id -> when it started). KEYS: the set.
# ARGV: task id, now, ttl (a dead task's entry lapses), cap. Returns 1 when the task may run.
_OWNER_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])))
  return 1
end
return 0
"""

PENDING_PREFIX = f"{PREFIX}pending:"
DEATHS = f"{PREFIX}lease-deaths"  # hash: lease key -> why its task died ("time")
SUSPECT = "!"  # prefix of an entry whose batch died: it runs alone (see _RECOVER)


def suspect(entry: str) -> bool:
    return entry.startswith(SUSPECT)


def plain(entry: str) -> str:
    """The entry without its suspect mark."""
    return entry.removeprefix(SUSPECT)


def pending_key(model_id: str) -> str:
    return f"{PENDING_PREFIX}{model_id}"


def wake_key(model_id: str, slot: int) -> str:
    return f"{PREFIX}wake:{model_id}:{slot}"


def lease_key(model_id: str, token: str) -> str:
    return f"{PREFIX}lease:{model_id}:{token}"


def model_of_lease(key: str) -> str:
    return key.removeprefix(f"{PREFIX}lease:").split(":", 1)[0]


def queue_depth(client: redis.Redis, model_id: str) -> int:
    return int(client.llen(pending_key(model_id)))


def admit(
    client: redis.Redis,
    model_id: str,
    *,
    max_depth: int = 0,
    expect_epoch: bytes | None = None,
    quota: Quota | None = None,
) -> tuple[int, bytes]:
    """Check, in one round trip, what a push would (the cache epoch, the caller's quota, the
    list's depth) and count the quota, for a job whose row is written before it is pushed.
    Returns (depth, current epoch); raises cache_epoch.Stale, QuotaSpent or QueueFull."""
    quota = quota or Quota()
    keys = [pending_key(model_id), EPOCH_KEY, *quota.keys]
    check = "0" if expect_epoch is None else "1"
    args = [max_depth, check, expect_epoch or b"", quota.count, *quota.args]
    reply = _run_script(client, _ADMIT, keys, args)[0]
    depth, _ = _pushed(reply, quota)
    return depth, _bytes(reply[2])


class QueueFull(Exception):
    """The model's pending list already holds MAX_QUEUE_DEPTH entries: nothing was pushed."""

    def __init__(self, depth: int) -> None:
        super().__init__(f"{depth} jobs waiting")
        self.depth = depth


@dataclass(frozen=True)
class Route:
    """How a model's drainers are reached: the Celery app and queue that carry wake-ups, how
    many drainers a model may have (slots) and how many jobs make a batch."""

    producer: Celery
    queue: str
    slots: int = 1
    batch_size: int = 64
    headers: dict | None = None


def push_jobs(
    client: redis.Redis,
    route: Route,
    model_id: str,
    entries: Iterable[str],
    *,
    max_depth: int = 0,
    expect_epoch: bytes | None = None,
    quota: Quota | None = None,
) -> int:
    """Append entries (job ids, or inline jobs) to the model's list and wake drainers as needed;
    returns the new depth. With max_depth, a list already that deep takes nothing (QueueFull);
    with expect_epoch, neither does one when the cache epoch has moved (cache_epoch.Stale); with
    a quota, neither does a caller who has used it up (QuotaSpent), and a push counts once. The
    checks and the push are one atomic script, one round trip.

    Slot 0 is woken whenever no drainer holds it; further slots only when a full batch is
    already waiting for each, so light traffic keeps one drainer (and big batches) per model.
    """
    items = list(entries)
    depth, woke = 0, []
    for start in range(0, len(items), _PUSH_CHUNK):
        first = start == 0
        chunk_quota = (quota or Quota()) if first else Quota()
        (reply,) = _run_script(
            client,
            _PUSH,
            _push_keys(route, model_id, chunk_quota),
            _push_args(
                route,
                max_depth if first else 0,
                expect_epoch if first else None,
                False,
                chunk_quota,
                items[start : start + _PUSH_CHUNK],
            ),
        )
        depth, slots = _pushed(reply, chunk_quota)
        woke += slots
    _wake(client, route, model_id, sorted(set(woke)))
    return depth


def push_and_wait(
    client: redis.Redis,
    route: Route,
    model_id: str,
    entry: str,
    reply_key: str,
    timeout_s: float,
    *,
    max_depth: int = 0,
    expect_epoch: bytes | None = None,
    quota: Quota | None = None,
) -> bytes | None:
    """Push one entry and block up to timeout_s for what its worker sends to reply_key (None
    when nothing came). Push and wait share one round trip: when the script stops (full, stale,
    quota spent) or a drainer must be woken first, it leaves a marker on reply_key so the
    pipelined BLPOP returns at once. `client` must tolerate long blocking reads.

    If the script fails inside Redis (out of memory under `noeviction`), the error surfaces at
    once: the connection carrying the blocked BLPOP is closed."""
    quota = quota or Quota()
    if timeout_s <= 0:
        push_jobs(
            client,
            route,
            model_id,
            [entry],
            max_depth=max_depth,
            expect_epoch=expect_epoch,
            quota=quota,
        )
        return None
    timeout_s = min(timeout_s, MAX_BLOCK_S)
    deadline = time.monotonic() + timeout_s
    keys = _push_keys(route, model_id, quota, reply_key)
    args = _push_args(route, max_depth, expect_epoch, True, quota, [entry])
    reply, got = _run_script(client, _PUSH, keys, args, ("BLPOP", reply_key, timeout_s))
    _, woke = _pushed(reply, quota)  # raises QueueFull / Stale / QuotaSpent: BLPOP took the marker
    if not woke:
        return None if got is None else got[1]
    _wake(client, route, model_id, woke)
    left = deadline - time.monotonic()
    got = client.blpop([reply_key], timeout=left) if left > 0 else None
    return None if got is None else got[1]


def _push_keys(
    route: Route, model_id: str, quota: Quota, reply_key: str | None = None
) -> list[str]:
    pending = pending_key(model_id)
    wakes = [wake_key(model_id, slot) for slot in range(max(route.slots, 1))]
    # KEYS[3] is only written with the marker flag; without a reply list any name will do.
    return [pending, EPOCH_KEY, reply_key or pending, *quota.keys, *wakes]


def _push_args(
    route: Route,
    max_depth: int,
    epoch: bytes | None,
    marker: bool,
    quota: Quota,
    entries: list[str],
) -> list:
    check = "0" if epoch is None else "1"
    head = [max_depth, WAKE_TTL_S, route.batch_size, check, epoch or b"", int(marker)]
    return [*head, quota.count, *quota.args, *entries]


def _pushed(reply: list, quota: Quota) -> tuple[int, list[int]]:
    """The script's verdict: (depth, slots woken), or the exception of its refusal; the quota's
    state is recorded on `quota` either way."""
    status, depth, epoch, woke, tight = reply
    status = _string(status)
    quota.state = state(tight, counted=status == "ok")
    if status == "stale":
        raise Stale(_bytes(epoch))
    if status == "limited":
        raise QuotaSpent(quota.state)
    if status == "full":
        raise QueueFull(int(depth))
    return int(depth), [int(slot) for slot in woke]


def _wake(client: redis.Redis, route: Route, model_id: str, slots: list[int]) -> None:
    for slot in slots:
        _send_wake(client, route, model_id, slot)


@functools.cache
def _sha(source: str) -> str:
    # How Redis names a loaded script (SCRIPT LOAD's answer), computed here: no round trip.
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


def _run_script(
    client: redis.Redis, source: str, keys: list[str], args: list, *then: tuple
) -> list:
    """EVALSHA of a script (its source goes to Redis once, not per call), with `then` commands
    sent behind it in the same round trip; replies of all. After a Redis restart or a SCRIPT
    FLUSH (NOSCRIPT) the script is loaded and the round trip sent again, so `then` must be safe
    to send twice (a BLPOP is: the first one was cancelled with its connection)."""
    call = ("EVALSHA", _sha(source), len(keys), *keys, *args)
    try:
        return roundtrip(client, call, *then)
    except NoScriptError:
        client.script_load(source)
        return roundtrip(client, call, *then)


def wake(client: redis.Redis, route: Route, model_id: str) -> None:
    """Start a drainer for entries put back in the list (if none holds the first slot)."""
    if client.set(wake_key(model_id, 0), 1, nx=True, ex=WAKE_TTL_S):
        _send_wake(client, route, model_id, 0)


def _send_wake(client: redis.Redis, route: Route, model_id: str, slot: int) -> None:
    try:
        route.producer.send_task(
            DRAIN_MODEL,
            args=[model_id, slot],
            queue=route.queue,
            headers=route.headers or {},
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0.1, "interval_step": 0.1},
        )
    except Exception:
        # Without its task the flag would block wake-ups for WAKE_TTL_S: release it.
        client.delete(wake_key(model_id, slot))
        raise


@dataclass
class Batch:
    """Entries just leased, the cache epoch read in the same round trip, and, when nothing was
    leased, the messages waiting in the broker queue the caller named (0 otherwise)."""

    entries: list[str]
    epoch: bytes
    others_waiting: int = 0


def lease_batch(
    client: redis.Redis, model_id: str, token: str, n: int, broker_queue: str | None = None
) -> Batch:
    """Take up to n ids (appending to this task's lease)."""
    keys = [pending_key(model_id), lease_key(model_id, token), LEASES, EPOCH_KEY]
    keys += [broker_queue] if broker_queue else []
    return _batch(_run_script(client, _LEASE, keys, [n, time.time()])[0])


def next_batch(
    client: redis.Redis,
    model_id: str,
    token: str,
    slot: int,
    n: int,
    then: Sequence[tuple] = (),
    broker_queue: str | None = None,
) -> Batch:
    """Finish the current lease (its jobs are written), keep the wake flag, and lease up to n
    more ids: what a drainer does between batches, in one round trip, which also carries `then`
    (the finished batch's done-signals; sent twice if Redis lost the script, which a list of
    signals tolerates)."""
    keys = [
        lease_key(model_id, token),
        pending_key(model_id),
        LEASES,
        wake_key(model_id, slot),
        EPOCH_KEY,
    ]
    keys += [broker_queue] if broker_queue else []
    return _batch(_run_script(client, _NEXT, keys, [n, time.time(), WAKE_TTL_S], *then)[0])


def _batch(reply: list) -> Batch:
    epoch, waiting, *entries = reply
    return Batch([_string(e) for e in entries], _bytes(epoch), int(waiting))


def _string(item: bytes | str) -> str:
    return item.decode() if isinstance(item, bytes) else item


def _bytes(item: bytes | str | None) -> bytes:
    return item.encode() if isinstance(item, str) else item or b""


def await_one(client: redis.Redis, model_id: str, token: str, timeout_s: float) -> Batch:
    """Block up to timeout_s for the next id, moving it straight into this task's lease
    (BLMOVE is atomic: a crash cannot drop it between list and lease)."""
    key = lease_key(model_id, token)
    # One round trip: the lease is registered as soon as the job arrives, not after another
    # exchange (an empty lease registered on timeout is dropped by the next release or restore).
    got, _, epoch = roundtrip(
        client,
        ("BLMOVE", pending_key(model_id), key, "LEFT", "RIGHT", timeout_s),
        ("ZADD", LEASES, time.time(), key),
        ("GET", EPOCH_KEY),
    )
    if got is None:
        client.zrem(LEASES, key)
        return Batch([], _bytes(epoch))
    return Batch([_string(got)], _bytes(epoch))


def release_lease(client: redis.Redis, model_id: str, token: str) -> None:
    key = lease_key(model_id, token)
    roundtrip(client, ("DEL", key), ("ZREM", LEASES, key))


def restore_lease(client: redis.Redis, key: str) -> int:
    """Put a lease's ids back at the head of their model's list."""
    keys = [key, pending_key(model_of_lease(key)), LEASES]
    return int(_run_script(client, _RESTORE, keys, [])[0])


@dataclass
class Recovered:
    """A dead lease put back: why its task died, and the entries set aside (not requeued)."""

    model_id: str
    cause: str
    set_aside: list[str]
    requeued: list[str]


def mark_dead(client: redis.Redis, model_id: str, token: str, cause: str) -> None:
    """Record why a drain task died (its lease is recovered by the reaper or its redelivery)."""
    client.hset(DEATHS, lease_key(model_id, token), cause)


def recover_lease(client: redis.Redis, key: str) -> Recovered:
    """Put back the lease of a task that died mid-batch (see _RECOVER): entries that may
    have killed it are set aside, the others requeued at the head as suspects."""
    keys = [key, pending_key(model_of_lease(key)), LEASES, DEATHS]
    cause, aside, back = _run_script(client, _RECOVER, keys, [])[0]
    return Recovered(
        model_of_lease(key),
        _string(cause),
        [plain(_string(e)) for e in aside],
        [plain(_string(e)) for e in back],
    )


def dead_leases(client: redis.Redis, ttl_s: float) -> list[str]:
    """Leases of dead tasks: older than ttl_s (no task outlives its hard time limit), or
    recorded as killed by `mark_dead`."""
    stale = client.zrangebyscore(LEASES, "-inf", time.time() - ttl_s, start=0, num=100)
    return list(dict.fromkeys([_string(k) for k in stale + client.hkeys(DEATHS)]))


def release_wake(client: redis.Redis, model_id: str, slot: int) -> bool:
    """Give up the wake flag; True if work arrived meanwhile and the flag was re-taken (the
    caller keeps draining). Closes the race with a push that saw the flag still set."""
    client.delete(wake_key(model_id, slot))
    if not client.llen(pending_key(model_id)):
        return False
    return bool(client.set(wake_key(model_id, slot), 1, nx=True, ex=WAKE_TTL_S))


def owner_key(owner_id: str) -> str:
    return f"{PREFIX}owner-drains:{owner_id}"


def take_owner_slot(client: redis.Redis, owner_id: str, token: str, cap: int, ttl_s: float) -> bool:
    """Count this drain task among its owner's; False (nothing taken) when `cap` already run.
    Entries older than ttl_s belong to dead tasks and lapse."""
    args = [token, time.time(), ttl_s, cap]
    return bool(_run_script(client, _OWNER_SLOT, [owner_key(owner_id)], args)[0])


def free_owner_slot(client: redis.Redis, owner_id: str, token: str) -> None:
    client.zrem(owner_key(owner_id), token)


def keep_wake(client: redis.Redis, model_id: str, slot: int) -> None:
    client.expire(wake_key(model_id, slot), WAKE_TTL_S)
