"""Job creation (with idempotency), enqueue-after-commit, waiting and rendering (sync predictions
build on these in web/jobs/sync.py)."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
from flask import current_app, g
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from shared import queueing
from shared.errors import Conflict, TooManyRequests, ValidationFailed
from shared.jobs import FINAL_JOB_STATUSES, Job
from shared.jobs.render import job_out
from shared.jobs.rows import queued_row
from shared.jobs.statements import INSERT_QUEUED
from shared.models import MLModel
from shared.redis_client import client_for
from shared.schemas.jobs import JobOut, PredictRequest
from shared.signals import wait_done
from web import epoch, metrics
from web.auth.guard import current
from web.extensions import app_redis, app_redis_url, db
from web.jobs.inputs import normalise_rows
from web.registry.cache import ServingModel

log = logging.getLogger(__name__)
IDEMPOTENCY_WINDOW = timedelta(hours=24)
MAX_IDEMPOTENCY_KEY = 255
RETRY_AFTER_FULL_S = 2


def settings():
    return current_app.extensions["mlsp_settings"]


def check_servable(model: ServingModel | MLModel) -> None:
    if model.status != "ready":
        raise Conflict(
            f"Model is {model.status}; it cannot take predictions", code="model_not_ready"
        )


def prepare_rows(model: ServingModel | MLModel, body: PredictRequest) -> np.ndarray:
    rows = normalise_rows(body.inputs, model.input_schema or {}, settings().max_rows_per_request)
    if body.return_probabilities and not (model.output_schema or {}).get("has_proba"):
        raise ValidationFailed(
            "This model cannot return probabilities", code="invalid_input",
            details={"field": "return_probabilities"},
        )  # fmt: skip
    return rows


def _request_hash(model_id: uuid.UUID, rows: np.ndarray, probabilities: bool) -> str:
    canonical = orjson.dumps(
        {"model": str(model_id), "rows": rows, "proba": probabilities},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    return hashlib.sha256(canonical).hexdigest()


def _replay(key: str, digest: str) -> Job | None:
    """The job created earlier under this key (within 24 h); 409 if the body differs."""
    job = db.session.scalar(
        select(Job).where(Job.owner_id == current().id, Job.idempotency_key == key)
    )
    if job is None:
        return None
    if job.created_at < datetime.now(UTC) - IDEMPOTENCY_WINDOW:
        job.idempotency_key = None  # expired: the key is free again
        db.session.flush()
        return None
    if job.request_hash != digest:
        raise Conflict(
            "Idempotency-Key was used with a different request", code="idempotency_conflict"
        )
    return job


def create_job(
    model: ServingModel | MLModel, rows: np.ndarray, probabilities: bool, key: str | None
) -> tuple[JobOut, bool]:
    """Insert the job (or find its idempotent twin) and commit; returns (job, created).

    One INSERT of the row (no ORM unit of work, no read back): the answer is rendered from the
    same values."""
    if key is not None and (not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or "\x00" in key):
        # PostgreSQL refuses NUL in text: a header holding one must not reach the INSERT.
        raise ValidationFailed(
            "Idempotency-Key must be 1..255 characters, no NUL", code="invalid_header"
        )
    digest = _request_hash(model.id, rows, probabilities) if key else None
    if key and (existing := _replay(key, digest)):
        return job_out(existing), False
    if key:
        db.session.commit()  # an expired key freed by _replay, before the insert reuses it
    row = queued_row(
        model_id=model.id,
        model_version=model.version,
        owner_id=current().id,
        rows=rows,
        probabilities=probabilities,
        request_id=g.get("request_id"),
        idempotency_key=key,
        request_hash=digest,
    )
    try:
        # One statement committed by itself (no BEGIN/COMMIT round trips): nothing else is
        # written with it, and the session has touched no connection on this path.
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(INSERT_QUEUED, row)
    except IntegrityError:
        db.session.rollback()  # a concurrent request with the same key won the insert
        existing = _replay(key, digest) if key else None
        if existing is None:
            raise
        return job_out(existing), False
    metrics.job_submitted()
    return job_out(row), True


def check_capacity(model: ServingModel | MLModel) -> None:
    """Overload is answered, not absorbed: past MAX_QUEUE_DEPTH waiting jobs, 429. The depth is
    read with the cache epoch, which checks an assumed one before the job row is written."""
    depth, current_epoch = queueing.depth_and_epoch(app_redis(), str(model.id))
    epoch.check(current_epoch)
    if depth >= settings().max_queue_depth:
        raise queue_full(depth)


def queue_full(depth: int) -> TooManyRequests:
    limit = settings().max_queue_depth
    return TooManyRequests(
        f"Model queue is full ({depth} jobs waiting); retry later",
        code="queue_full",
        retry_after=RETRY_AFTER_FULL_S,
        details={"queue_depth": depth, "max_queue_depth": limit},
    )


def _route() -> queueing.Route:
    config = settings()
    return queueing.Route(
        current_app.extensions["celery_producer"], config.default_queue,
        config.drain_concurrency, config.batch_max_jobs, {"request_id": g.get("request_id")},
    )  # fmt: skip


def push(model_id: uuid.UUID, entries: list[str]) -> None:
    queueing.push_jobs(app_redis(), _route(), str(model_id), entries)


def push_and_wait(model_id: uuid.UUID, entry: str, reply_key: str, seconds: float) -> bytes | None:
    """Queue one entry, checked against capacity and the request's assumed cache epoch, and
    wait for its reply (queueing.push_and_wait: one round trip)."""
    try:
        reply = queueing.push_and_wait(
            client_for(app_redis_url(), blocking=True), _route(), str(model_id), entry, reply_key,
            seconds, max_depth=settings().max_queue_depth, expect_epoch=epoch.expected(),
        )  # fmt: skip
    except queueing.QueueFull:
        epoch.confirm()  # the script checks the epoch before the depth
        raise
    epoch.confirm()
    return reply


def enqueue(job_id: uuid.UUID, model_id: uuid.UUID) -> bool:
    """Queue the job id after the row is committed. If Redis is down the job stays `queued` in
    PostgreSQL (durable) and the reaper queues it again; the client still gets its 202."""
    try:
        push(model_id, [str(job_id)])
        return True
    except Exception:
        log.warning("enqueue failed for job %s; left queued for the reaper", job_id, exc_info=True)
        return False


def submit(
    model: ServingModel | MLModel, rows: np.ndarray, probabilities: bool, key: str | None
) -> tuple[JobOut, bool]:
    """The durable path: capacity check, row committed, id queued. Returns (job, created)."""
    check_capacity(model)
    job, created = create_job(model, rows, probabilities, key)
    if created:
        enqueue(job.id, model.id)
    return job, created


def wait_for(job: JobOut | Job, seconds: float) -> JobOut:
    """Wait (without holding a database connection) for the job to finish, then read it."""
    # Rendered before the commit below, which expires the ORM object's attributes.
    current_state = job if isinstance(job, JobOut) else job_out(job)
    if current_state.status in FINAL_JOB_STATUSES or seconds <= 0:
        return current_state
    db.session.commit()  # end the read transaction: no connection idles through the wait
    if not wait_done("job", current_state.id, seconds, url=app_redis_url()):
        return current_state
    return job_out(db.session.get(Job, current_state.id, populate_existing=True))


def remaining(timeout: float) -> float:
    """What is left of a client's timeout, counted from the start of this request."""
    return timeout - (time.monotonic() - g.get("started_at", time.monotonic()))


def cancel(job_id: uuid.UUID) -> Job | None:
    """Cancel if not finished (conditional, so a racing worker result is discarded); None if
    the job had already finished."""
    cancelled = db.session.scalar(
        update(Job)
        .where(
            Job.id == job_id, Job.owner_id == current().id, Job.status.in_(("queued", "running"))
        )
        .values(status="cancelled", finished_at=datetime.now(UTC))
        .returning(Job)
    )
    db.session.commit()
    return cancelled
