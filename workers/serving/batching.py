"""Drain a model's pending list in micro-batches (the body of the `drain_model` task).

Under load jobs accumulate while a batch predicts, so the next lease picks up many at once;
when a lease comes back small, BATCH_MAX_WAIT_MS (off by default) can let a few more arrive. A
task drains for at most DRAIN_BUDGET_S and then hands the flag to a fresh task, so one hot model
cannot hold a worker process forever and a shutdown never waits long.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
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


# (model id, leased entries, the cache epoch read with them, a list to put the batch's
# done-signals in: they go to Redis in the round trip that leases the next batch)
RunBatch = Callable[[str, list[str], bytes, list[tuple]], object]


# A batch that raised one of these was not at fault (an outage, or the task's time is up): its
# entries go back as they were, and the task ends (tasks.drain_model retries outages).
TRANSIENT = (redis.RedisError, OperationalError, InterfaceError, SoftTimeLimitExceeded)


def drain(
    client: redis.Redis,
    settings: Settings,
    model_id: str,
    slot: int,
    token: str,
    hand_off: Callable[[], None],
    recover: Callable[[str], queueing.Recovered] | None = None,
    run_batch: RunBatch = pipeline.run_batch,
) -> DrainReport:
    """Lease → run → release until the list is empty or the time budget is spent. `recover`
    puts back a dead task's lease (workers/serving/recovery.recover, which records what it sets
    aside); by default the set-aside entries are only dropped. `run_batch` predicts one leased
    batch: the prediction pipeline, or a stand-in in tests."""
    report = DrainReport()
    recover = recover or functools.partial(queueing.recover_lease, client)
    # A redelivered task (same id as the one that died: its worker was lost) first puts its old
    # lease back, each entry to run alone (shared/queueing.py _RECOVER).
    recover(queueing.lease_key(model_id, token))
    deadline = time.monotonic() + settings.drain_budget_s
    queue = settings.default_queue  # where wake-ups (and validations) wait for a process
    lease = functools.partial(
        queueing.lease_batch, client, model_id, token, settings.batch_max_jobs, queue
    )
    batch = lease()
    while True:
        batch = _fill(client, settings, model_id, token, batch)
        ids = batch.entries
        if not ids:
            if queueing.release_wake(client, model_id, slot):
                batch = lease()
                continue
            return report
        signals: list[tuple] = []
        try:
            run_batch(model_id, [queueing.plain(e) for e in ids], batch.epoch, signals)
        except Exception as exc:
            _send_anyway(client, signals)
            if isinstance(exc, TRANSIENT):
                queueing.restore_lease(client, queueing.lease_key(model_id, token))
                raise
            # The batch itself is at fault: never back to the head as it was (issue 18).
            _failed_batch(client, model_id, token, exc, recover)
            batch = lease()
            continue
        except BaseException:
            # Not done (shutdown): the ids go back to the head of the list for whoever drains
            # next. Any job already written (the rerun will not write it again) still wakes its
            # waiter.
            _send_anyway(client, signals)
            queueing.restore_lease(client, queueing.lease_key(model_id, token))
            raise
        report.batches += 1
        report.jobs += len(ids)
        report.job_ids += [entry_id(e) for e in ids[: SHOWN_IDS - len(report.job_ids)]]
        if time.monotonic() > deadline:
            send_commands(client, signals)
            _hand_off(client, model_id, slot, token, hand_off)
            return report
        batch = queueing.next_batch(
            client, model_id, token, slot, settings.batch_max_jobs, signals, queue
        )


def _send_anyway(client: redis.Redis, signals: list[tuple]) -> None:
    with contextlib.suppress(redis.RedisError):
        send_commands(client, signals)


def _failed_batch(
    client: redis.Redis,
    model_id: str,
    token: str,
    exc: Exception,
    recover: Callable[[str], queueing.Recovered],
) -> None:
    """A batch that raised: a lone entry is set aside (failed), several go back to run alone."""
    cause = "out_of_memory" if isinstance(exc, MemoryError) else "error"
    log.error("drain %s: batch raised %s: %s", model_id, type(exc).__name__, exc, exc_info=exc)
    queueing.mark_dead(client, model_id, token, cause)
    recover(queueing.lease_key(model_id, token))


def _hand_off(
    client: redis.Redis,
    model_id: str,
    slot: int,
    token: str,
    hand_off: Callable[[], None],
) -> None:
    """The budget is spent: if work is left, a fresh task takes over the wake flag."""
    queueing.release_lease(client, model_id, token)
    queueing.keep_wake(client, model_id, slot)
    if queueing.queue_depth(client, model_id) or queueing.release_wake(client, model_id, slot):
        hand_off()  # the wake flag stays set: it now belongs to the new task


def _fill(
    client: redis.Redis, settings: Settings, model_id: str, token: str, batch: queueing.Batch
) -> queueing.Batch:
    """The lease just taken, made worth a batch. If it is empty, linger DRAIN_LINGER_MS for the
    next job (cheaper than a new wake-up task when jobs arrive back to back) -- unless other
    tasks wait in the broker queue for a process, as when many models each have a job: this
    process is theirs then (with 50 models, lingering on each held the pool idle for most of
    its time). If it found several jobs waiting but fewer than a full batch, traffic is
    concurrent: wait BATCH_MAX_WAIT_MS once for stragglers. A lone job (one client at a time)
    is not made to wait for company that is not coming."""
    n = len(batch.entries)
    if not n and settings.drain_linger_ms > 0 and not batch.others_waiting:
        return queueing.await_one(client, model_id, token, settings.drain_linger_ms / 1000)
    if 1 < n < settings.batch_max_jobs and settings.batch_max_wait_ms > 0:
        time.sleep(settings.batch_max_wait_ms / 1000)
        more = queueing.lease_batch(client, model_id, token, settings.batch_max_jobs - n)
        return queueing.Batch(batch.entries + more.entries, more.epoch)
    return batch
