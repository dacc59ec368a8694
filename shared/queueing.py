"""Per-model job queues on Redis, served by drain tasks that take turns over users and models.

Why not one Celery task per job: a single-row predict costs far more than its share of a batched
call, and Celery itself tops out near 200-300 tasks/s here (docs/measurements.md, "Celery's task
throughput ceiling"). So job entries wait in a Redis list per model. A push puts the model in
its owner's ready list and the owner in the ready ring (shared/queue_scripts.py); a drain task
takes one batch at a time from the owner at the head of the ring, predicts it, and comes back
for the next, whichever model and owner that is: one drainer serves every model with work, and
a user flooding one model gets one batch in turn with every other user who waits. Drain tasks
are sent only while fewer run than the pool has processes (workers register theirs), so many
models with one job each do not cost a Celery task per job; a drainer that finds nothing lingers
DRAIN_LINGER_MS on a bell the next push rings, then leaves.

A batch is leased (a list named after the drain task's id) while it runs. A lease whose task
died is put back: at once by the redelivered task, or by the reaper after the task's deadline.
PostgreSQL stays the durable record: if Redis loses these lists, the reaper re-pushes every job
still `queued` (or `running` past its deadline) from the jobs table.
"""

from __future__ import annotations

import functools
import hashlib
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis
from celery import Celery
from redis.exceptions import NoScriptError

from shared import queue_scripts as scripts
from shared.cache_epoch import EPOCH_KEY, Stale
from shared.celery_config import DRAIN_MODEL
from shared.config import Settings
from shared.quotas import Quota, QuotaSpent, state
from shared.redis_client import MAX_BLOCK_S, PREFIX, roundtrip

LEASES = f"{PREFIX}leases"  # sorted set: lease key -> time it was taken
_PUSH_CHUNK = 1000  # entries per script call (Lua's unpack has a stack limit)

PENDING_PREFIX = f"{PREFIX}pending:"
DEATHS = f"{PREFIX}lease-deaths"  # hash: lease key -> why its task died ("time")
SUSPECT = "!"  # prefix of an entry whose batch died: it runs alone (queue_scripts.RECOVER)


def suspect(entry: str) -> bool:
    return entry.startswith(SUSPECT)


def plain(entry: str) -> str:
    """The entry without its suspect mark."""
    return entry.removeprefix(SUSPECT)


def pending_key(model_id: str) -> str:
    return f"{PENDING_PREFIX}{model_id}"


def ring_prefix(queue: str) -> str:
    """Where the scheduler of the drain tasks on this broker queue keeps its keys."""
    return f"{PREFIX}{queue}:"


def ring_key(queue: str, name: str) -> str:
    """One of the scheduler's keys: ring, drainers, idle, bell, capacity, capacity-by-host,
    sched:<model>, ready:<owner>, busy:<owner> (shared/queue_scripts.py)."""
    return f"{ring_prefix(queue)}{name}"


def lease_key(model_id: str, token: str) -> str:
    return f"{PREFIX}lease:{model_id}:{token}"


def model_of_lease(key: str) -> str:
    return key.removeprefix(f"{PREFIX}lease:").split(":", 1)[0]


def token_of_lease(key: str) -> str:
    return key.removeprefix(f"{PREFIX}lease:").split(":", 1)[1]


def queue_depth(client: redis.Redis, model_id: str) -> int:
    return int(client.llen(pending_key(model_id)))


def admit(
    client: redis.Redis,
    route: Route,
    model_id: str,
    *,
    owner: str = "",
    max_depth: int = 0,
    max_backlog: int = 0,
    expect_epoch: bytes | None = None,
    quota: Quota | None = None,
) -> tuple[int, bytes]:
    """Check, in one round trip, what a push would (the cache epoch, the caller's quota, the
    list's depth, the owner's backlog) and count the quota, for a job whose row is written
    before it is pushed. Returns (depth, current epoch); raises cache_epoch.Stale, QuotaSpent,
    QueueFull or BacklogFull."""
    quota = quota or Quota()
    keys = [pending_key(model_id), EPOCH_KEY, route.key(f"backlog:{owner}"), *quota.keys]
    check = "0" if expect_epoch is None else "1"
    args = [max_depth, check, expect_epoch or b"", max_backlog, quota.count, *quota.args]
    reply = _run_script(client, scripts.ADMIT, keys, args)[0]
    depth, _ = _pushed(reply, quota)
    return depth, _bytes(reply[2])


class QueueFull(Exception):
    """The model's pending list already holds MAX_QUEUE_DEPTH entries: nothing was pushed."""

    def __init__(self, depth: int) -> None:
        super().__init__(f"{depth} jobs waiting")
        self.depth = depth


class BacklogFull(Exception):
    """The owner already has MAX_QUEUED_PER_USER entries waiting across its models: nothing
    was pushed."""

    def __init__(self, queued: int) -> None:
        super().__init__(f"{queued} jobs waiting for this user")
        self.queued = queued


@dataclass(frozen=True)
class Route:
    """How drainers are reached and counted: the Celery app and queue that carry drain tasks,
    how many jobs make a batch, the pool size assumed until workers register theirs (`pool`),
    the drainers one owner may hold (`owner_cap`: negative for all the pool but one, 0 for no
    cap), and when a silent drainer counts as gone (`drainer_ttl_s`, `idle_ttl_s`)."""

    producer: Celery
    queue: str
    batch_size: int = 64
    headers: dict | None = None
    pool: int = 2
    owner_cap: int = -1
    drainer_ttl_s: float = 95.0
    idle_ttl_s: float = 5.05

    @classmethod
    def from_settings(cls, producer: Celery, settings: Settings, headers: dict | None = None):
        """The route every process derives from the same settings."""
        cap = settings.max_drains_per_owner
        return cls(
            producer,
            settings.default_queue,
            settings.batch_max_jobs,
            headers,
            settings.worker_concurrency,
            -1 if cap is None else cap,
            settings.task_deadline_s,
            settings.drain_linger_ms / 1000 + 5,
        )

    def key(self, name: str) -> str:
        return ring_key(self.queue, name)

    def sched(self, model_id: str = "", owner: str = "", token: str = "") -> list:
        """The eleven scheduling values the scripts read (queue_scripts.SCHED)."""
        token = token or uuid.uuid4().hex
        return [
            PREFIX,
            model_id,
            owner,
            token,
            time.time(),
            self.batch_size,
            self.pool,
            self.owner_cap,
            self.drainer_ttl_s,
            self.idle_ttl_s,
            ring_prefix(self.queue),
        ]


def push_jobs(
    client: redis.Redis,
    route: Route,
    model_id: str,
    entries: Iterable[str],
    *,
    owner: str = "",
    max_depth: int = 0,
    max_backlog: int = 0,
    expect_epoch: bytes | None = None,
    quota: Quota | None = None,
) -> int:
    """Append entries (job ids, or inline jobs) to the model's list, schedule the model in its
    owner's turn of the ready ring and summon a drainer if it needs one; returns the new depth.
    With max_depth, a list already that deep takes nothing (QueueFull), nor, with max_backlog,
    does an owner with that many entries waiting across its models (BacklogFull); with
    expect_epoch,
    neither does one when the cache epoch has moved (cache_epoch.Stale); with a quota, neither
    does a caller who has used it up (QuotaSpent), and a push counts once. The checks and the
    push are one atomic script, one round trip. `owner` (the user the jobs are for) is known to
    Redis from the model's first push on; callers that do not know it pass nothing.

    A drain task is sent only while fewer drainers than the pool's processes are registered and
    none lingers idle (then the push rings the bell that one blocks on): many models with one job
    each do not cost a task per job."""
    items = list(entries)
    depth, woke = 0, []
    for start in range(0, len(items), _PUSH_CHUNK):
        first = start == 0
        chunk_quota = (quota or Quota()) if first else Quota()
        (reply,) = _run_script(
            client,
            scripts.PUSH,
            _push_keys(route, model_id, owner, chunk_quota),
            _push_args(
                route.sched(model_id, owner),
                (max_depth, max_backlog) if first else (0, 0),
                expect_epoch if first else None,
                False,
                chunk_quota,
                items[start : start + _PUSH_CHUNK],
            ),
        )
        depth, token = _pushed(reply, chunk_quota)
        woke += [token] if token else []
    for token in woke:
        _send_drainer(client, route, token)
    return depth


def push_and_wait(
    client: redis.Redis,
    route: Route,
    model_id: str,
    entry: str,
    reply_key: str,
    timeout_s: float,
    *,
    owner: str = "",
    max_depth: int = 0,
    max_backlog: int = 0,
    expect_epoch: bytes | None = None,
    quota: Quota | None = None,
) -> bytes | None:
    """Push one entry and block up to timeout_s for what its worker sends to reply_key (None
    when nothing came). Push and wait share one round trip: when the script stops (full, stale,
    quota spent) or a drain task must be sent first, it leaves a marker on reply_key so the
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
            owner=owner,
            max_depth=max_depth,
            max_backlog=max_backlog,
            expect_epoch=expect_epoch,
            quota=quota,
        )
        return None
    timeout_s = min(timeout_s, MAX_BLOCK_S)
    deadline = time.monotonic() + timeout_s
    keys = _push_keys(route, model_id, owner, quota, reply_key)
    limits = (max_depth, max_backlog)
    args = _push_args(route.sched(model_id, owner), limits, expect_epoch, True, quota, [entry])
    reply, got = _run_script(client, scripts.PUSH, keys, args, ("BLPOP", reply_key, timeout_s))
    _, token = _pushed(reply, quota)  # raises QueueFull / Stale / QuotaSpent: BLPOP took the marker
    if not token:
        return None if got is None else got[1]
    _send_drainer(client, route, token)
    left = deadline - time.monotonic()
    got = client.blpop([reply_key], timeout=left) if left > 0 else None
    return None if got is None else got[1]


def _push_keys(
    route: Route, model_id: str, owner: str, quota: Quota, reply_key: str | None = None
) -> list[str]:
    pending = pending_key(model_id)
    # KEYS[3] is only written with the marker flag; without a reply list any name will do.
    backlog = route.key(f"backlog:{owner}")
    return [pending, EPOCH_KEY, reply_key or pending, backlog, *quota.keys]


def _push_args(
    sched: list,
    limits: tuple[int, int],
    epoch: bytes | None,
    marker: bool,
    quota: Quota,
    entries: list[str],
) -> list:
    """ARGV of the push script; `limits` are the max depth and the max backlog (0: none)."""
    check = "0" if epoch is None else "1"
    head = [limits[0], check, epoch or b"", int(marker), limits[1]]
    return [*head, quota.count, *quota.args, *sched, *entries]


def _pushed(reply: list, quota: Quota) -> tuple[int, str]:
    """The script's verdict: (depth, token of a drainer to send or ''), or the exception of its
    refusal; the quota's state is recorded on `quota` either way."""
    status, depth, epoch, woke, tight = reply
    status = _string(status)
    quota.state = state(tight, counted=status == "ok")
    if status == "stale":
        raise Stale(_bytes(epoch))
    if status == "limited":
        raise QuotaSpent(quota.state)
    if status == "full":
        raise QueueFull(int(depth))
    if status == "backlog":
        raise BacklogFull(int(depth))
    return int(depth), _string(woke)


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


def reschedule(client: redis.Redis, route: Route, model_id: str) -> None:
    """Entries were put back in a model's list (recovery): schedule it and summon a drainer as a
    push would."""
    token = _run_script(client, scripts.RESCHEDULE, [pending_key(model_id)], route.sched(model_id))
    if _string(token[0]):
        _send_drainer(client, route, _string(token[0]))


def ensure_drainer(client: redis.Redis, route: Route, quiet_s: float) -> bool:
    """Send a drain task when the ring has work and no drainer was seen for quiet_s (their
    tasks were lost); True if one was sent."""
    (token,) = _run_script(client, scripts.ENSURE, [], [*route.sched(), quiet_s])
    if _string(token):
        _send_drainer(client, route, _string(token))
    return bool(token)


def _send_drainer(client: redis.Redis, route: Route, token: str) -> None:
    try:
        route.producer.send_task(
            DRAIN_MODEL,
            queue=route.queue,
            task_id=token,
            headers=route.headers or {},
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0.1, "interval_step": 0.1},
        )
    except Exception:
        # Registered but never sent, it would hold a place in the pool until it lapsed.
        client.zrem(route.key("drainers"), token)
        raise


@dataclass
class Group:
    """The entries of one model (for one owner) in a batch."""

    model_id: str
    owner: str
    entries: list[str]


@dataclass
class Batch:
    """Entries just leased, by model, the cache epoch read in the same round trip, and, when
    nothing was leased, the messages waiting in the broker queue the caller named (0 otherwise)."""

    groups: list[Group]
    epoch: bytes
    others_waiting: int = 0

    @property
    def entries(self) -> list[str]:
        return [e for g in self.groups for e in g.entries]

    def finished(self, token: str) -> list[str]:
        """Lease keys and owners of its groups, as the scripts that finish a batch read them."""
        return [item for g in self.groups for item in (lease_key(g.model_id, token), g.owner)]


def take(
    client: redis.Redis,
    route: Route,
    token: str,
    done: Batch | None = None,
    mode: str = "work",
    then: Sequence[tuple] = (),
) -> Batch:
    """Finish `done` (its jobs are written) and take the next batch from the ring: what a
    drainer does between batches, in one round trip, which also carries `then` (the finished
    batch's done-signals; sent twice if Redis lost the script, which a list of signals
    tolerates). When nothing can be taken, `mode` says what the drainer does: 'work' nothing,
    'linger' registers it as lingering (the next push rings the bell) unless other tasks wait in
    the broker queue (`others_waiting`: then, as with 'retire', it leaves the drainers and the
    next push sends a new task)."""
    keys, args = _take_call(route, token, done, mode)
    return _taken(_run_script(client, scripts.TAKE, keys, args, *then)[0])


def wait_and_take(client: redis.Redis, route: Route, token: str, timeout_s: float) -> Batch:
    """Block up to timeout_s for the bell a push rings for lingering drainers, then take (mode
    'linger'), in one round trip: Redis runs the take as soon as the wait returns."""
    keys, args = _take_call(route, token, None, "linger")
    call = ("EVALSHA", _sha(scripts.TAKE), len(keys), *keys, *args)
    try:
        _, reply = roundtrip(client, ("BLPOP", route.key("bell"), timeout_s), call)
    except NoScriptError:  # Redis lost its scripts: the wait is over, take again
        reply = _run_script(client, scripts.TAKE, keys, args)[0]
    return _taken(reply)


def _take_call(route: Route, token: str, done: Batch | None, mode: str) -> tuple[list, list]:
    keys = [EPOCH_KEY, LEASES, route.queue]
    return keys, [*route.sched(token=token), mode, *(done.finished(token) if done else [])]


def _taken(reply: list) -> Batch:
    epoch, waiting, *rest = reply
    groups = []
    while rest:
        model_id, owner, n, *rest = rest
        entries, rest = rest[: int(n)], rest[int(n) :]
        groups.append(Group(_string(model_id), _string(owner), [_string(e) for e in entries]))
    return Batch(groups, _bytes(epoch), int(waiting))


def lease_more(client: redis.Redis, route: Route, group: Group, token: str, n: int) -> list[str]:
    """Up to n more entries of the group's model into this task's lease (a straggler wait)."""
    model_id = group.model_id
    backlog = route.key(f"backlog:{group.owner}")
    keys = [pending_key(model_id), lease_key(model_id, token), LEASES, backlog]
    return [_string(e) for e in _run_script(client, scripts.LEASE, keys, [n, time.time()])[0]]


def hand_off(client: redis.Redis, route: Route, token: str, done: Batch | None) -> str:
    """Finish `done` and pass this drainer's place to a fresh task if the ring has work (the
    time budget is spent: the process goes back to the broker queue's other tasks); returns the
    new task's id, or '' when there was nothing left to hand."""
    args = [*route.sched(), token, *(done.finished(token) if done else [])]
    (new,) = _run_script(client, scripts.HAND_OFF, [LEASES], args)
    if _string(new):
        _send_drainer(client, route, _string(new))
    return _string(new)


def _string(item: bytes | str) -> str:
    return item.decode() if isinstance(item, bytes) else item


def _bytes(item: bytes | str | None) -> bytes:
    return item.encode() if isinstance(item, str) else item or b""


def restore_lease(client: redis.Redis, route: Route, key: str) -> int:
    """Put a lease's ids back at the head of their model's list (an outage: not their fault)."""
    model_id = model_of_lease(key)
    keys = [key, pending_key(model_id), LEASES]
    args = route.sched(model_id, token=token_of_lease(key))
    return int(_run_script(client, scripts.RESTORE, keys, args)[0])


@dataclass
class Recovered:
    """A dead lease put back: why its task died, and the entries set aside (not requeued)."""

    model_id: str
    cause: str
    set_aside: list[str]
    requeued: list[str]


def mark_dead(client: redis.Redis, key: str, cause: str) -> None:
    """Record why the drain task holding this lease died (it is recovered by the reaper or the
    task's redelivery)."""
    client.hset(DEATHS, key, cause)


def leases_of(client: redis.Redis, token: str) -> list[str]:
    """The leases a drain task holds (one, between two batches none; a scan of the few leases
    taken, done only when a task died)."""
    pattern = f"{PREFIX}lease:*:{token}"
    return [_string(k) for k, _ in client.zscan_iter(LEASES, match=pattern, count=1000)]


def forget_drainer(client: redis.Redis, queue: str, token: str) -> None:
    """A drain task that will not run again (it ended, or was killed at its hard time limit)
    leaves the drainers of its queue at once, not when its entry lapses."""
    drainers, idle = ring_key(queue, "drainers"), ring_key(queue, "idle")
    roundtrip(client, ("ZREM", drainers, token), ("ZREM", idle, token))


def recover_lease(client: redis.Redis, route: Route, key: str) -> Recovered:
    """Put back the lease of a task that died mid-batch (queue_scripts.RECOVER): entries that
    may have killed it are set aside, the others requeued at the head as suspects."""
    model_id = model_of_lease(key)
    keys = [key, pending_key(model_id), LEASES, DEATHS]
    args = route.sched(model_id, token=token_of_lease(key))
    cause, aside, back = _run_script(client, scripts.RECOVER, keys, args)[0]
    return Recovered(
        model_id,
        _string(cause),
        [plain(_string(e)) for e in aside],
        [plain(_string(e)) for e in back],
    )


def dead_leases(client: redis.Redis, ttl_s: float) -> list[str]:
    """Leases of dead tasks: older than ttl_s (no task outlives its hard time limit), or
    recorded as killed by `mark_dead`."""
    stale = client.zrangebyscore(LEASES, "-inf", time.time() - ttl_s, start=0, num=100)
    return list(dict.fromkeys([_string(k) for k in stale + client.hkeys(DEATHS)]))


def register_capacity(client: redis.Redis, queue: str, host: str, processes: int) -> int:
    """A worker host's processes join the pool serving `queue` (0: leave it); returns the pool's
    size."""
    keys = [ring_key(queue, "capacity"), ring_key(queue, "capacity-by-host")]
    return int(_run_script(client, scripts.CAPACITY, keys, [host, processes])[0])
