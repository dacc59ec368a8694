"""Prediction endpoints: async jobs, sync predict, long-poll, cancel, history."""

from __future__ import annotations

import uuid

from flask import Blueprint, request
from spectree import Response

from shared.errors import Conflict
from shared.jobs import FINAL_JOB_STATUSES, Job
from shared.jobs.inputs import Rows
from shared.jobs.render import job_out
from shared.schemas.common import ErrorResponse
from shared.schemas.jobs import JobList, JobOut, JobQuery, PredictQuery, PredictRequest, WaitQuery
from web import epoch, waits
from web.aliases import shadow
from web.aliases.resolve import Resolved, resolve
from web.auth.guard import current, login_required
from web.jobs import service
from web.openapi import AUTH, PROTECTED_ERRORS, errors, spec
from web.pagination import page_of
from web.scoping import get_owned

models_bp = Blueprint("model_jobs", __name__)
jobs_bp = Blueprint("jobs", __name__)

_ERRORS = errors(*PROTECTED_ERRORS, 404)
_SUBMIT_ERRORS = errors(*PROTECTED_ERRORS, 404, 409, 413, 429)


def _location(job: JobOut) -> dict[str, str]:
    return {"Location": f"/api/v1/jobs/{job.id}"}


def _request_rows(ref: str) -> tuple[Resolved, Rows, bool, bool]:
    """The version `ref` (an id or a name reference) resolves to, and the checked rows."""
    resolved = resolve(ref)
    service.check_servable(resolved.model)
    body: PredictRequest = request.context.json
    rows = service.prepare_rows(resolved.model, body)
    return resolved, rows, body.return_probabilities, body.return_scores


def _shadow(resolved: Resolved, rows: Rows, job: JobOut) -> None:
    """Copy the request to the shadow version (web/aliases/shadow.py) once it has its job."""
    if resolved.shadow is not None:
        shadow.fire(resolved.shadow, resolved.model, rows, request.context.json, job.id)


@models_bp.post("/<string:ref>/jobs")
@epoch.assumed
@login_required()
@spec.validate(
    json=PredictRequest,
    resp=Response(HTTP_202=JobOut, HTTP_200=JobOut, **_SUBMIT_ERRORS),
    tags=["jobs"],
    security=AUTH,
)
def submit(ref: str):
    """Queue a prediction job; poll `Location` for the result. `ref` is the model's id, or its
    name (`name`, `name@alias`, `name@v3`: docs/aliases.md)."""
    resolved, rows, proba, scores = _request_rows(ref)
    key = request.headers.get("Idempotency-Key")
    job, created = service.submit(
        resolved.model, rows, proba, key, scores=scores, route=resolved.route
    )
    if created:
        _shadow(resolved, rows, job)
    status = 200 if job.status in FINAL_JOB_STATUSES else 202
    return job, status, _location(job)


@models_bp.post("/<string:ref>/predict")
@epoch.assumed
@login_required()
@spec.validate(
    json=PredictRequest,
    query=PredictQuery,
    resp=Response(HTTP_200=JobOut, HTTP_202=JobOut, **_SUBMIT_ERRORS),
    tags=["jobs"],
    security=AUTH,
)
def predict(ref: str):
    """Queue a job and wait up to `timeout` seconds: 200 with the result, or 202 + `Location`
    (at once when the caller or this server has too many waits already: web/waits.py). `ref`
    is the model's id, or its name (`name`, `name@alias`, `name@v3`: docs/aliases.md)."""
    resolved, rows, proba, scores = _request_rows(ref)
    model, route = resolved.model, resolved.route
    timeout = service.remaining(request.context.query.timeout)
    key = request.headers.get("Idempotency-Key")
    with waits.slot() as waiting:
        if waiting:
            job = service.predict(model, rows, proba, key, timeout, scores=scores, route=route)
        else:  # accepted, just not waited on: the client polls Location as after a timeout
            job, _ = service.submit(model, rows, proba, key, scores=scores, route=route)
    _shadow(resolved, rows, job)
    if job.status in FINAL_JOB_STATUSES:
        return job, 200
    return job, 202, _location(job)


@jobs_bp.get("/<uuid:job_id>")
@login_required()
@spec.validate(
    query=WaitQuery, resp=Response(HTTP_200=JobOut, **_ERRORS), tags=["jobs"], security=AUTH
)
def get_job(job_id: uuid.UUID):
    """One job; `?wait=N` long-polls up to N seconds for it to finish (429 when the caller or
    this server has too many waits already: web/waits.py)."""
    job = get_owned(Job, job_id, "Job")
    seconds = service.remaining(request.context.query.wait)
    if seconds <= 0 or job.status in FINAL_JOB_STATUSES:
        return job_out(job)
    with waits.slot() as waiting:
        if not waiting:
            raise waits.too_many()
        return service.wait(job, seconds)


@jobs_bp.delete("/<uuid:job_id>")
@login_required()
@spec.validate(
    resp=Response(HTTP_200=JobOut, HTTP_409=ErrorResponse, **_ERRORS), tags=["jobs"], security=AUTH
)
def cancel_job(job_id: uuid.UUID):
    """Cancel a queued or running job; 409 once it has finished."""
    job = service.cancel(job_id)
    if job is None:
        finished = get_owned(Job, job_id, "Job")
        raise Conflict(f"Job already {finished.status}", code="job_finished")
    return job_out(job)


@jobs_bp.get("")
@login_required()
@spec.validate(
    query=JobQuery, resp=Response(HTTP_200=JobList, **_ERRORS), tags=["jobs"], security=AUTH
)
def list_jobs():
    """The caller's prediction history, newest first."""
    q: JobQuery = request.context.query
    where = [Job.owner_id == current().id]
    if q.model_id:
        where.append(Job.model_id == q.model_id)
    if q.status:
        where.append(Job.status == q.status)
    if q.route:
        where.append(Job.route == q.route)
    rows, total = page_of(Job, where, [Job.created_at.desc()], q)
    items = [job_out(j) for j in rows]
    return JobList(items=items, page=q.page, per_page=q.per_page, total=total)
