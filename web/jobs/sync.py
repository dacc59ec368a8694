"""Synchronous predictions: run a job and wait for it, up to the client's timeout.

Small requests without an Idempotency-Key go inline (shared/inline_jobs.py): the queue entry
carries the rows, the worker writes the finished row and replies with the job, and this tier
writes nothing unless the wait runs out. The others take the durable path of async jobs (row
first, then the id) and wait for its done-signal.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import numpy as np
from flask import g

from shared import inline_jobs, queueing
from shared.inline_jobs import InlineJob
from shared.jobs import Job
from shared.jobs.render import job_out
from shared.jobs.rows import queued_row
from shared.jobs.statements import INSERT_QUEUED
from shared.models import MLModel
from shared.schemas.jobs import JobOut
from shared.signals import reply_key
from web import metrics
from web.auth.guard import current
from web.extensions import db
from web.jobs import service
from web.registry.cache import ServingModel


def predict(
    model: ServingModel | MLModel,
    rows: np.ndarray,
    probabilities: bool,
    key: str | None,
    timeout: float,
) -> JobOut:
    """The finished job, or the unfinished one (durable by then) when `timeout` runs out."""
    if key is None and len(rows) <= service.settings().sync_inline_max_rows:
        return _predict_inline(model, rows, probabilities, timeout)
    job, _ = service.submit(model, rows, probabilities, key)
    return service.wait_for(job, timeout)


def _predict_inline(
    model: ServingModel | MLModel, rows: np.ndarray, probabilities: bool, timeout: float
) -> JobOut:
    now = time.time()
    job = InlineJob(
        id=inline_jobs.new_id(), model_id=str(model.id), owner_id=str(current().id),
        model_version=model.version, inputs=rows, return_probabilities=probabilities,
        created_at=now, deadline=now + max(timeout, 0), request_id=g.get("request_id"),
    )  # fmt: skip
    try:
        reply = service.push_and_wait(model.id, job.encode(), reply_key("job", job.id), timeout)
    except queueing.QueueFull as full:
        raise service.queue_full(full.depth) from None
    metrics.job_submitted()
    if reply is not None:
        return JobOut.model_validate_json(reply)
    return _persist_unanswered(job)


def _persist_unanswered(job: InlineJob) -> JobOut:
    """The wait ran out: make the job durable (its row, `queued`, and its id queued) before the
    202. If the worker's row got there first, the job has finished: answer it."""
    row = queued_row(
        job_id=uuid.UUID(job.id),
        model_id=uuid.UUID(job.model_id),
        model_version=job.model_version,
        owner_id=uuid.UUID(job.owner_id),
        rows=np.asarray(job.inputs),
        probabilities=job.return_probabilities,
        request_id=job.request_id,
        created_at=datetime.fromtimestamp(job.created_at, UTC),
    )
    inserted = db.session.scalar(INSERT_QUEUED, row)
    db.session.commit()
    if inserted is None:
        return job_out(db.session.get(Job, row["id"]))
    service.enqueue(row["id"], row["model_id"])
    return job_out(row)
