"""Prediction jobs as the routes ask for them: submit (async), predict (sync, up to a timeout),
wait for a job, cancel one. The queue (web/jobs/queue.py) and Idempotency-Key replays
(web/jobs/idempotency.py) are this module's to call; neither calls back.

A sync prediction of a few rows without an Idempotency-Key goes inline (shared/inline_jobs.py):
the queue entry carries the rows, the worker writes the finished row and replies with the job,
and this tier writes nothing unless the wait runs out. The others take the durable path of async
jobs (row first, then the id) and wait for its done-signal.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from flask import g
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from shared import inline_jobs
from shared.errors import Conflict, ValidationFailed
from shared.inline_jobs import InlineJob
from shared.jobs import FINAL_JOB_STATUSES, Job, inputs
from shared.jobs import copy as job_copy
from shared.jobs.checks import normalise_rows
from shared.jobs.inputs import Rows
from shared.jobs.render import job_out
from shared.jobs.rows import QUEUED, queued_row
from shared.jobs.statements import INSERT_QUEUED
from shared.models import MLModel
from shared.schemas.jobs import JobOut, PredictRequest
from shared.signals import DONE, reply_key, signal_done, wait_signal
from web import extensions, metrics
from web.auth.guard import current
from web.extensions import db
from web.jobs import idempotency, queue
from web.registry.cache import ServingModel


def check_servable(model: ServingModel | MLModel) -> None:
    if model.status != "ready":
        raise Conflict(
            f"Model is {model.status}; it cannot take predictions", code="model_not_ready"
        )


def prepare_rows(model: ServingModel | MLModel, body: PredictRequest) -> Rows:
    limit = extensions.settings().max_rows_per_request
    rows = normalise_rows(body.inputs, model.input_schema or {}, limit)
    if body.return_probabilities and not (model.output_schema or {}).get("has_proba"):
        raise ValidationFailed(
            "This model cannot return probabilities",
            code="invalid_input",
            details={"field": "return_probabilities"},
        )
    if body.return_scores and not (model.output_schema or {}).get("has_scores"):
        raise ValidationFailed(
            "This model has no score_samples (outlier detectors have)",
            code="invalid_input",
            details={"field": "return_scores"},
        )
    return rows


def remaining(timeout: float) -> float:
    """What is left of a client's timeout, counted from the start of this request."""
    return timeout - (time.monotonic() - g.get("started_at", time.monotonic()))


def submit(
    model: ServingModel | MLModel,
    rows: Rows,
    probabilities: bool,
    key: str | None,
    *,
    scores: bool = False,
    route: str = "explicit",
    waited: bool = False,
) -> tuple[JobOut, bool]:
    """The durable path: capacity check, row committed, id queued. Returns (job, created).
    `route` records how the version was chosen (shared/jobs/table.JOB_ROUTES); `waited`: the
    caller waits for the job (the worker replies with it)."""
    queue.check_capacity(model)
    job, created = _create_job(model, rows, probabilities, key, scores, route)
    if created:
        queue.enqueue(job.id, model.id, reply=waited)
    return job, created


def predict(
    model: ServingModel | MLModel,
    rows: Rows,
    probabilities: bool,
    key: str | None,
    timeout: float,
    *,
    scores: bool = False,
    route: str = "explicit",
) -> JobOut:
    """The finished job, or the unfinished one (durable by then) when `timeout` runs out."""
    if key is None and len(rows) <= extensions.settings().sync_inline_max_rows:
        return _predict_inline(model, rows, probabilities, timeout, scores, route)
    job, _ = submit(model, rows, probabilities, key, scores=scores, route=route, waited=True)
    return wait(job, timeout)


def wait(job: JobOut | Job, seconds: float) -> JobOut:
    """Wait (without holding a database connection) for the job to finish, then read it."""
    # Rendered before the commit below, which expires the ORM object's attributes.
    current_state = job if isinstance(job, JobOut) else job_out(job)
    if current_state.status in FINAL_JOB_STATUSES or seconds <= 0:
        return current_state
    db.session.commit()  # end the read transaction: no connection idles through the wait
    url = extensions.settings().redis_url
    signal = wait_signal("job", current_state.id, seconds, url=url)
    if signal is None:
        return current_state
    if signal != DONE:  # the worker's reply: the job as it wrote it
        return JobOut.model_validate_json(signal)
    return job_out(db.session.get(Job, current_state.id, populate_existing=True))


def cancel(job_id: uuid.UUID) -> Job | None:
    """Cancel if not finished (conditional, so a racing worker result is discarded) and wake
    its waiters; None if the job had already finished."""
    cancelled = db.session.scalar(
        update(Job)
        .where(
            Job.id == job_id, Job.owner_id == current().id, Job.status.in_(("queued", "running"))
        )
        .values(status="cancelled", finished_at=datetime.now(UTC))
        .returning(Job)
    )
    db.session.commit()
    if cancelled is not None:
        signal_done("job", [cancelled.id], url=extensions.settings().redis_url)
    return cancelled


def _create_job(
    model: ServingModel | MLModel,
    rows: Rows,
    probabilities: bool,
    key: str | None,
    scores: bool,
    route: str,
) -> tuple[JobOut, bool]:
    """Insert the job (or find its idempotent twin) and commit; returns (job, created).

    One INSERT of the row (no ORM unit of work, no read back): the answer is rendered from the
    same values."""
    if key is not None:
        idempotency.check_key(key)
    digest = idempotency.request_hash(model.id, rows, probabilities, scores) if key else None
    if key and (existing := idempotency.replay(key, digest)):
        return job_out(existing), False
    if key:
        db.session.commit()  # an expired key freed by the replay, before the insert reuses it
    row = queued_row(
        model_id=model.id,
        model_version=model.version,
        owner_id=current().id,
        rows=rows,
        probabilities=probabilities,
        scores=scores,
        request_id=g.get("request_id"),
        idempotency_key=key,
        request_hash=digest,
        route=route,
    )
    try:
        _insert_queued(row)
    except IntegrityError:
        db.session.rollback()  # a concurrent request with the same key won the insert
        existing = idempotency.replay(key, digest) if key else None
        if existing is None:
            raise
        return job_out(existing), False
    metrics.job_submitted()
    return job_out(row), True


def _insert_queued(row: dict) -> None:
    """One statement committed by itself (no BEGIN/COMMIT round trips): nothing else is written
    with it, and the session has touched no connection on this path. A big matrix goes in by
    binary COPY (shared/jobs/copy.py): as an INSERT's literal it cost twice the time."""
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        if job_copy.is_big(row):
            job_copy.insert(conn, QUEUED, [row])
        else:
            conn.execute(INSERT_QUEUED, row)


def _predict_inline(
    model: ServingModel | MLModel,
    rows: Rows,
    probabilities: bool,
    timeout: float,
    scores: bool,
    route: str,
) -> JobOut:
    now = time.time()
    job = InlineJob(
        id=inline_jobs.new_id(),
        model_id=str(model.id),
        owner_id=str(current().id),
        model_version=model.version,
        inputs=inputs.to_text(rows),
        return_probabilities=probabilities,
        created_at=now,
        deadline=now + max(timeout, 0),
        request_id=g.get("request_id"),
        return_scores=scores,
        route=route,
    )
    reply = queue.push_and_wait(model.id, job.encode(), reply_key("job", job.id), timeout)
    metrics.job_submitted()
    if reply is not None:
        return JobOut.model_validate_json(reply)
    return _persist_unanswered(job, rows)


def _persist_unanswered(job: InlineJob, rows: Rows) -> JobOut:
    """The wait ran out: make the job durable (its row, `queued`, and its id queued) before the
    202. If the worker's row got there first, the job has finished: answer it."""
    row = queued_row(
        job_id=uuid.UUID(job.id),
        model_id=uuid.UUID(job.model_id),
        model_version=job.model_version,
        owner_id=uuid.UUID(job.owner_id),
        rows=rows,
        probabilities=job.return_probabilities,
        scores=job.return_scores,
        request_id=job.request_id,
        created_at=datetime.fromtimestamp(job.created_at, UTC),
        route=job.route,
    )
    inserted = db.session.scalar(INSERT_QUEUED, row)
    db.session.commit()
    if inserted is None:
        return job_out(db.session.get(Job, row["id"]))
    queue.enqueue(row["id"], row["model_id"])
    return job_out(row)
