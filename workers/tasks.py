"""Celery tasks: thin wrappers that decode ids, call the plain functions, and signal."""

from __future__ import annotations

import logging

from shared import maintenance
from shared.celery_config import (
    EXPIRE_JOBS,
    PREDICT_JOBS,
    PRUNE_HISTORY,
    PURGE_ARTIFACTS,
    VALIDATE_MODEL,
)
from shared.config import get_settings
from shared.db import session_scope
from shared.redis_client import PREFIX, get_redis
from shared.signals import signal_done
from shared.store import get_store
from workers import jobs, validation
from workers.celery_app import app

log = logging.getLogger(__name__)
_settings = get_settings()


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
    name=PREDICT_JOBS,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=_settings.task_soft_time_limit_s,
    time_limit=_settings.task_time_limit_s,
)
def predict_jobs(model_id: str, job_ids: list[str]) -> None:
    """Predict a batch of jobs of one model (one id or many)."""
    report = jobs.run_jobs(model_id, job_ids)
    log.info(
        "predict_jobs model=%s claimed=%d written=%d failed=%d cache_hit=%s",
        model_id, report.claimed, report.written, report.failed, report.cache_hit,
    )  # fmt: skip


@app.task(name=EXPIRE_JOBS, ignore_result=True, soft_time_limit=60, time_limit=90)
def expire_jobs() -> int:
    """Queued jobs past JOB_TTL_S become `expired`; waiters are woken."""
    with session_scope() as session:
        expired = maintenance.expire_queued_jobs(session, _settings.job_ttl_s)
    if expired:
        signal_done("job", expired)
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
