"""Celery tasks: thin wrappers that decode ids, call the plain functions, and signal."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError

from shared import maintenance, queueing
from shared.celery_config import (
    DRAIN_MODEL,
    EXPIRE_JOBS,
    PRUNE_HISTORY,
    PURGE_ARTIFACTS,
    REAP_JOBS,
    VALIDATE_MODEL,
)
from shared.config import get_settings
from shared.db import session_scope
from shared.redis_client import PREFIX, get_redis
from shared.signals import signal_done
from shared.store import get_store
from workers import batching, jobs, metrics, validation
from workers.celery_app import app

log = logging.getLogger(__name__)
_settings = get_settings()


def _lease_deadline() -> float:
    # No task outlives its hard time limit: an older lease or `running` job has lost its worker.
    return _settings.task_time_limit_s + 5


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
        validation.record_crash(model_id, attempts - 1)
    else:
        validation.validate_model(model_id)
    signal_done("model", [model_id])


@app.task(
    name=DRAIN_MODEL,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=_settings.task_soft_time_limit_s,
    time_limit=_settings.task_time_limit_s,
)
def drain_model(self, model_id: str, slot: int = 0) -> dict:
    """Predict the jobs waiting for one model, in batches, until its list is empty."""
    redis = get_redis()

    def hand_off() -> None:
        drain_model.apply_async(args=[model_id, slot], queue=_settings.default_queue)

    try:
        report = batching.drain(redis, _settings, model_id, slot, self.request.id, _run, hand_off)
    except (OperationalError, RedisError) as exc:
        # The database or Redis is down: the lease was put back; try again with backoff while
        # still holding the wake flag, so no other drainer starts meanwhile.
        countdown = min(2**self.request.retries, 30)
        log.warning(
            "drain %s: dependency down (%s); retry in %ss", model_id, type(exc).__name__, countdown
        )
        raise self.retry(exc=exc, countdown=countdown, max_retries=DRAIN_RETRIES) from exc
    log.info(
        "drain model=%s slot=%d batches=%d jobs=%d", model_id, slot, report.batches, report.jobs
    )
    # Not stored (ignore_result), but carried by the task-succeeded event: Flower shows it, so an
    # operator can search for a job id there.
    return {"model_id": model_id, "jobs": report.jobs, "job_ids": report.job_ids}


def _run(model_id: str, job_ids: list[str], epoch: bytes, signals: list[tuple]) -> None:
    report = jobs.run_jobs(model_id, job_ids, epoch=epoch, signals=signals)
    log.info(
        "batch model=%s size=%d claimed=%d written=%d failed=%d cache_hit=%s",
        model_id, len(job_ids), report.claimed, report.written, report.failed, report.cache_hit,
    )  # fmt: skip


@app.task(name=REAP_JOBS, ignore_result=True, soft_time_limit=60, time_limit=90)
def reap_jobs() -> int:
    """Re-enqueue jobs the queue lost (Redis restarted empty) or whose worker died."""
    redis = get_redis()
    restored = queueing.restore_expired_leases(redis, _lease_deadline())
    with session_scope() as session:
        stuck = maintenance.find_stuck_jobs(session, _settings.job_stuck_after_s, _lease_deadline())
    route = queueing.Route(app, _settings.default_queue, _settings.drain_concurrency,
                           _settings.batch_max_jobs)  # fmt: skip
    for model_id, ids in stuck.items():
        queueing.push_jobs(redis, route, model_id, ids)
    count = sum(len(ids) for ids in stuck.values())
    if count or restored:
        log.warning(
            "reaper: re-enqueued %d stuck jobs, restored %d expired leases", count, restored
        )
    return count


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
    with session_scope() as session:
        return maintenance.prune_history(session, _settings.job_retention_days)


@app.task(name=PURGE_ARTIFACTS, ignore_result=True, soft_time_limit=300, time_limit=360)
def purge_artifacts() -> int:
    with session_scope() as session:
        return maintenance.purge_deleted_artifacts(session, get_store(), _settings.artifact_grace_s)
