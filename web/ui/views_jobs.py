"""Jobs: the history with filters and live rows, a job's page, cancel; and "try it", a form
built from a model's input columns that runs a sync prediction through the API's job service."""

from __future__ import annotations

import uuid
from datetime import date

from flask import flash, redirect, render_template, request, url_for
from pydantic import ValidationError

from shared.errors import ApiError, Conflict, NotFound
from shared.jobs import FINAL_JOB_STATUSES, JOB_STATUSES, Job
from shared.jobs.render import job_out
from shared.schemas.jobs import PredictQuery, PredictRequest
from web import waits
from web.jobs import service
from web.registry.cache import owned_model
from web.scoping import get_owned
from web.ui import queries
from web.ui.blueprint import bp
from web.ui.forms import ActionForm, row_of, try_form
from web.ui.sessions import page_login_required
from web.ui.views_models import _page_number, _version, _versions_or_404

TRY_TIMEOUT_S = PredictQuery.model_fields["timeout"].default


def _filters() -> queries.JobFilters:
    status = request.args.get("status") or None
    try:
        day = date.fromisoformat(request.args["date"]) if request.args.get("date") else None
    except ValueError:
        day = None
    return queries.JobFilters(
        model=request.args.get("model") or None,
        status=status if status in JOB_STATUSES else None,
        day=day,
        page=_page_number(),
    )


@bp.get("/jobs")
@page_login_required
def jobs():
    filters = _filters()
    return render_template(
        "ui/jobs.html",
        page=queries.jobs_page(filters),
        filters=filters,
        statuses=JOB_STATUSES,
        names=queries.name_choices(),
    )


@bp.get("/jobs/<uuid:job_id>/row")
@page_login_required
def job_row(job_id: uuid.UUID):
    """One history row: what the live rows of queued and running jobs poll."""
    row = queries.job_row(job_id)
    if row is None:
        raise NotFound("Job not found")
    return render_template("ui/_job_row.html", job=row)


@bp.get("/jobs/<uuid:job_id>")
@page_login_required
def job(job_id: uuid.UUID):
    row = get_owned(Job, job_id, "Job")
    return render_template(
        "ui/job.html",
        job=job_out(row),
        n_rows=row.n_rows,
        model_name=queries.model_name_of(row.model_id),
        final=row.status in FINAL_JOB_STATUSES,
        action=ActionForm(),
    )


@bp.post("/jobs/<uuid:job_id>/cancel")
@page_login_required
def cancel(job_id: uuid.UUID):
    if service.cancel(job_id) is None:
        finished = get_owned(Job, job_id, "Job")  # 404 for someone else's
        raise Conflict(f"Job already {finished.status}", code="job_finished")
    flash("Job cancelled.")
    return redirect(url_for("ui.job", job_id=job_id), 303)


def _columns(model) -> list[dict]:
    schema = model.input_schema or {}
    if schema.get("columns"):
        return schema["columns"]
    count = schema.get("n_features") or 0
    return [{"name": f"x{i}", "dtype": "number", "nullable": False} for i in range(count)]


@bp.route("/models/<name>/try", methods=["GET", "POST"])
@page_login_required
def try_it(name: str):
    model = _version(_versions_or_404(name), request.args.get("version", type=int))
    columns = _columns(model)
    has_proba = bool((model.output_schema or {}).get("has_proba"))
    form = try_form(columns, has_proba)()
    result, errors = None, []
    if form.validate_on_submit():
        try:
            result = _predict(
                model.id, columns, form, bool(model.input_schema.get("feature_names"))
            )
        except ValidationError as err:
            errors = [e["msg"] for e in err.errors(include_url=False)]
        except ApiError as err:
            errors = [_explain(err)]
    status = 422 if errors or (request.method == "POST" and form.errors) else 200
    return render_template(
        "ui/try.html", name=name, model=model, form=form, result=result, errors=errors
    ), status


def _predict(model_id: uuid.UUID, columns: list[dict], form, named: bool):
    """A sync prediction of one row, as `POST /models/{id}/predict` runs it."""
    serving = owned_model(model_id)
    service.check_servable(serving)
    row = row_of(form, columns)
    inputs = [row] if named else [list(row.values())]
    proba = bool(getattr(form, "return_probabilities", None) and form.return_probabilities.data)
    rows = service.prepare_rows(serving, PredictRequest(inputs=inputs, return_probabilities=proba))
    with waits.slot() as waiting:
        if waiting:
            return service.predict(serving, rows, proba, None, service.remaining(TRY_TIMEOUT_S))
        job, _ = service.submit(serving, rows, proba, None)
        return job


def _explain(err: ApiError) -> str:
    """The API's message, with the column it names when it names one."""
    details = err.details or {}
    where = ", ".join(f"{k}: {details[k]}" for k in ("column", "row") if k in details)
    return f"{err.message} ({where})" if where else err.message
