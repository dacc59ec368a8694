"""Celery tasks: thin wrappers that decode ids, call the plain functions, and signal."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError

from shared import cache_epoch, maintenance, queueing
from shared.celery_config import (
    DRAIN_MODEL,
    EXPIRE_JOBS,
    PRUNE_HISTORY,
    PURGE_ARTIFACTS,
    REAP_JOBS,
    REAP_MODELS,
    VALIDATE_MODEL,
)
from shared.config import get_settings
from shared.db import session_scope
from shared.redis_client import PREFIX, get_redis
from shared.signals import signal_done
from shared.store import get_store
from workers import metrics
from workers.batches import reaper as batch_reaper
from workers.batches import tasks as batch_tasks
from workers.celery_app import app
from workers.serving import batching, recovery
from workers.validation import validate

log = logging.getLogger(__name__)
_settings = get_settings()


DRAIN_RETRIES = 30  # with backoff capped at 30 s: rides out a ~15 minute outage


@app.task(
    name=VALIDATE_MODEL,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=_settings.task_soft_time_limit_s,
    time_limit=_settings.task_time_limit_s,
)
def validate_model(model_id: str) -> None:
    """Validate an upload. A file that crashes the worker process is redelivered; after
    JOB_MAX_ATTEMPTS deliveries it is marked failed instead of crash-looping the pool."""
    attempts_key = f"{PREFIX}validate-attempts:{model_id}"
    attempts = get_redis().incr(attempts_key)
    get_redis().expire(attempts_key, 86400)
    if attempts > _settings.job_max_attempts:
        validate.record_crash(model_id, attempts - 1)
    elif validate.validate_model(model_id) == "ready":
        # A new ready version changes what its bare name resolves to (web/aliases/cache.py).
        cache_epoch.bump(get_redis())
    signal_done("model", [model_id])


@app.task(name=REAP_MODELS, ignore_result=True, soft_time_limit=60, time_limit=90)
def reap_models() -> int:
    """Send validation again for models stuck in `validating` (each send counts as a delivery,
    so a file that kills its worker every time ends failed, never validating forever)."""
    with session_scope() as session:
        stuck = maintenance.find_stuck_models(session, _settings.model_stuck_after_s)
    for model_id in stuck:
        validate_model.apply_async(args=[str(model_id)], queue=_settings.default_queue)
    if stuck:
        log.warning("model reaper: sent validation again for %d stuck models", len(stuck))
    return len(stuck)


@app.task(
    name=DRAIN_MODEL,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=_settings.task_soft_time_limit_s,
    time_limit=_settings.task_time_limit_s,
)
def drain_model(self, *legacy: Any) -> dict:
    """Serve the ready ring: batches of whichever models wait, users in turn, until nothing is
    left to take (shared/queueing.py). `legacy` is the model id and slot of a wake-up sent by a
    version that drained one model per task: that model is scheduled, then served with the rest."""
    redis, route, token = get_redis(), _route(), self.request.id

    def recover(key: str) -> queueing.Recovered:
        return recovery.recover(redis, key, route)

    retrying = False
    try:
        if legacy:
            queueing.reschedule(redis, route, str(legacy[0]))
        report = batching.drain(redis, _settings, route, token, recover)
    except (OperationalError, RedisError) as exc:
        # The database or Redis is down: the lease was put back; try again with backoff, still
        # counted among the drainers (the retry has this task's id).
        countdown = min(2**self.request.retries, 30)
        log.warning("drain: dependency down (%s); retry in %ss", type(exc).__name__, countdown)
        retrying = True
        raise self.retry(exc=exc, countdown=countdown, max_retries=DRAIN_RETRIES) from exc
    finally:
        if not retrying:
            with contextlib.suppress(RedisError):
                queueing.forget_drainer(redis, route.queue, token)
    log.info("drain models=%d batches=%d jobs=%d", len(report.models), report.batches, report.jobs)
    # Not stored (ignore_result), but carried by the task-succeeded event: Flower shows it, so an
    # operator can search for a job id there.
    return {"models": sorted(report.models), "jobs": report.jobs, "job_ids": report.job_ids}


def _route() -> queueing.Route:
    return queueing.Route.from_settings(app, _settings)


@app.task(name=REAP_JOBS, ignore_result=True, soft_time_limit=60, time_limit=90)
def reap_jobs() -> int:
    """Recover the leases of dead drain tasks (killed for time: at once), and re-enqueue jobs
    the queue lost (Redis restarted empty) or whose worker died."""
    redis = get_redis()
    route = _route()
    leases = [
        recovery.recover(redis, key, route)
        for key in queueing.dead_leases(redis, _settings.task_deadline_s)
    ]
    with session_scope() as session:
        stuck = maintenance.find_stuck_jobs(
            session, _settings.job_stuck_after_s, _settings.task_deadline_s
        )
    for model_id, ids in stuck.items():
        queueing.push_jobs(redis, route, model_id, ids)
    # Work in the ring but no drainer seen for a while: their tasks were lost (a broker that
    # restarted empty while the job lists survived).
    if queueing.ensure_drainer(redis, route, _settings.job_stuck_after_s):
        log.warning("reaper: sent a drain task for work no drainer took")
    count = sum(len(ids) for ids in stuck.values()) + _reap_batches()
    if count or leases:
        log.warning(
            "reaper: re-enqueued %d stuck jobs; recovered %d dead leases (%d entries set aside)",
            count,
            len(leases),
            sum(len(r.set_aside) for r in leases),
        )
    return count


def _reap_batches() -> int:
    """Send again what batches wait for: a queued item waits behind at most a planning run."""
    queued_after = max(_settings.job_stuck_after_s, batch_tasks.PLAN_SOFT_LIMIT_S + 60)
    with session_scope() as session:
        stuck = batch_reaper.find_stuck(session, queued_after, _settings.task_deadline_s)
    for batch_id in stuck.plans:
        batch_tasks.send_plan(str(batch_id))
    for batch_id, index in stuck.chunks:
        batch_tasks.send_chunks(str(batch_id), [index])
    for batch_id in stuck.results:
        batch_tasks.send_result(str(batch_id))
    return len(stuck)


@app.task(name=EXPIRE_JOBS, ignore_result=True, soft_time_limit=60, time_limit=90)
def expire_jobs() -> int:
    """Queued jobs past JOB_TTL_S become `expired`; waiters are woken."""
    with session_scope() as session:
        expired = maintenance.expire_queued_jobs(session, _settings.job_ttl_s)
    if expired:
        signal_done("job", expired)
        metrics.jobs_finished("expired", len(expired))
        log.info("expired %d queued jobs", len(expired))
    return len(expired)


@app.task(name=PRUNE_HISTORY, ignore_result=True, soft_time_limit=300, time_limit=360)
def prune_history() -> int:
    """Jobs past JOB_RETENTION_DAYS, and batches with their files (cancelled and failed ones lose
    their working files after ARTIFACT_GRACE_S)."""
    with session_scope() as session:
        jobs = maintenance.prune_history(session, _settings.job_retention_days)
    with session_scope() as session:
        files = maintenance.prune_batches(
            session, get_store(), _settings.job_retention_days, _settings.artifact_grace_s
        )
    return jobs + files


@app.task(name=PURGE_ARTIFACTS, ignore_result=True, soft_time_limit=300, time_limit=360)
def purge_artifacts() -> int:
    with session_scope() as session:
        return maintenance.purge_deleted_artifacts(session, get_store(), _settings.artifact_grace_s)
