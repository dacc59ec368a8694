"""Serve the ready ring in micro-batches (the body of the `drain_model` task).

Under load jobs accumulate while a batch predicts, so the next take picks up many at once;
when a batch comes back small, BATCH_MAX_WAIT_MS (off by default) can let a few more arrive. A
task drains for at most DRAIN_BUDGET_S and then hands its place to a fresh task, so a busy ring
cannot hold a worker process forever, the broker queue's other tasks get their turn, and a
shutdown never waits long.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import InterfaceError, OperationalError

from shared import queueing
from shared.config import Settings
from shared.inline_jobs import entry_id
from shared.signals import send_commands
from workers.serving import pipeline

log = logging.getLogger(__name__)


SHOWN_IDS = 100  # job ids kept for the task's result, which Flower shows and searches


@dataclass
class DrainReport:
    batches: int = 0
    jobs: int = 0
    job_ids: list[str] = field(default_factory=list)
    models: set[str] = field(default_factory=set)

    def add(self, batch: queueing.Batch) -> None:
        entries = batch.entries
        self.batches += 1
        self.jobs += len(entries)
        self.models.update(g.model_id for g in batch.groups)
        self.job_ids += [entry_id(e) for e in entries[: SHOWN_IDS - len(self.job_ids)]]


# ((model id, its leased entries) per model of the batch, the cache epoch read with them, a list
# to put the batch's done-signals in: they go to Redis in the round trip that takes the next)
RunBatch = Callable[[list[tuple[str, list[str]]], bytes, list[tuple]], object]


# A batch that raised one of these was not at fault (an outage, or the task's time is up): its
# entries go back as they were, and the task ends (tasks.drain_model retries outages).
TRANSIENT = (redis.RedisError, OperationalError, InterfaceError, SoftTimeLimitExceeded)


def drain(
    client: redis.Redis,
    settings: Settings,
    route: queueing.Route,
    token: str,
    recover: Callable[[str], queueing.Recovered] | None = None,
    run_batch: RunBatch = pipeline.run_batch,
) -> DrainReport:
    """Take → run → finish, batch after batch from the ready ring (shared/queueing.py), until
    nothing is left to take or the time budget is spent. `recover` puts back a dead task's lease
    (workers/serving/recovery.recover, which records what it sets aside); by default the
    set-aside entries are only dropped. `run_batch` predicts one leased batch: the prediction
    pipeline, or a stand-in in tests."""
    report = DrainReport()
    recover = recover or functools.partial(queueing.recover_lease, client, route)
    # A redelivered task (same id as the one that died: its worker was lost) first puts its old
    # lease back, each entry to run alone (shared/queue_scripts.py RECOVER).
    for key in queueing.leases_of(client, token):
        recover(key)
    deadline = time.monotonic() + settings.drain_budget_s
    idle = _Linger(client, route, token, settings.drain_linger_ms / 1000)
    batch = idle.take()
    while True:
        if not batch.entries:
            batch = idle.next(batch)
            if batch is None:
                return report
            continue
        idle.reset()
        batch = _fill(client, settings, route, token, batch)
        groups = [(g.model_id, [queueing.plain(e) for e in g.entries]) for g in batch.groups]
        signals: list[tuple] = []
        try:
            run_batch(groups, batch.epoch, signals)
        except Exception as exc:
            _send_anyway(client, signals)
            if isinstance(exc, TRANSIENT):
                _restore(client, route, token, batch)
                raise
            # The batch itself is at fault: never back to the head as it was (issue 18).
            _failed_batch(client, token, batch, exc, recover)
            batch = idle.take(batch)  # its leases are recovered
            continue
        except BaseException:
            # Not done (shutdown): the ids go back to the head of the list for whoever drains
            # next. Any job already written (the rerun will not write it again) still wakes its
            # waiter.
            _send_anyway(client, signals)
            _restore(client, route, token, batch)
            raise
        report.add(batch)
        if time.monotonic() > deadline:
            send_commands(client, signals)
            queueing.hand_off(client, route, token, batch)
            return report
        batch = idle.take(batch, signals)


def _restore(client: redis.Redis, route: queueing.Route, token: str, batch: queueing.Batch) -> None:
    for group in batch.groups:
        queueing.restore_lease(client, route, queueing.lease_key(group.model_id, token))


class _Linger:
    """What a drainer does when the ring has nothing for it: linger DRAIN_LINGER_MS in all
    (not per bell) for a push's bell -- cheaper than a new drain task when jobs arrive back to
    back -- unless other tasks wait in the broker queue for a process: it is theirs then. The
    take that finds nothing registers the drainer as lingering, or takes it out of the drainers,
    in the same round trip (a push after that sends a new task)."""

    def __init__(self, client: redis.Redis, route: queueing.Route, token: str, linger_s: float):
        self.client, self.route, self.token, self.linger_s = client, route, token, linger_s
        self.mode = "linger" if linger_s > 0 else "retire"
        self.until: float | None = None

    def reset(self) -> None:
        self.until = None

    def take(self, done: queueing.Batch | None = None, then: Sequence[tuple] = ()):
        """The next batch; when there is none, the drainer lingers or has left (see next)."""
        return queueing.take(self.client, self.route, self.token, done, self.mode, then)

    def next(self, empty: queueing.Batch) -> queueing.Batch | None:
        """After a take that found nothing: the next batch, or None when the drainer has left."""
        if self.mode == "retire" or empty.others_waiting:
            return None  # that take took it out of the drainers
        now = time.monotonic()
        if self.until is None:
            self.until = now + self.linger_s
        if now < self.until:
            return queueing.wait_and_take(self.client, self.route, self.token, self.until - now)
        batch = queueing.take(self.client, self.route, self.token, mode="retire")
        return batch if batch.entries else None


def _send_anyway(client: redis.Redis, signals: list[tuple]) -> None:
    with contextlib.suppress(redis.RedisError):
        send_commands(client, signals)


def _failed_batch(
    client: redis.Redis,
    token: str,
    batch: queueing.Batch,
    exc: Exception,
    recover: Callable[[str], queueing.Recovered],
) -> None:
    """A batch that raised: a lone entry is set aside (failed), several go back to run alone
    (with entries of other models beside it, a lone entry of one model is one of several)."""
    cause = "out_of_memory" if isinstance(exc, MemoryError) else "error"
    cause += "+" if len(batch.groups) > 1 else ""
    models = [g.model_id for g in batch.groups]
    log.error("drain %s: batch raised %s: %s", models, type(exc).__name__, exc, exc_info=exc)
    for model_id in models:
        key = queueing.lease_key(model_id, token)
        queueing.mark_dead(client, key, cause)
        recover(key)


def _fill(
    client: redis.Redis,
    settings: Settings,
    route: queueing.Route,
    token: str,
    batch: queueing.Batch,
) -> queueing.Batch:
    """The batch just taken, made worth a batch. If it found several jobs of one model waiting
    but fewer than a full batch, traffic is concurrent: wait BATCH_MAX_WAIT_MS once for
    stragglers. A lone job
    (one client at a time) is not made to wait for company that is not coming."""
    n = len(batch.entries)
    if len(batch.groups) == 1 and 1 < n < settings.batch_max_jobs and settings.batch_max_wait_ms:
        time.sleep(settings.batch_max_wait_ms / 1000)
        group = batch.groups[0]
        group.entries += queueing.lease_more(
            client, route, group, token, settings.batch_max_jobs - n
        )
    return batch
