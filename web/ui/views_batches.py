"""Batches (bulk file predictions): the list with live progress, and the result download."""

from __future__ import annotations

import uuid

from flask import flash, redirect, render_template, send_file, url_for

from shared.batches import Batch
from shared.errors import NotFound
from web.batches import service
from web.scoping import get_owned
from web.ui import queries
from web.ui.blueprint import bp
from web.ui.sessions import page_login_required
from web.ui.views_models import _page_number

MIMETYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


@bp.get("/batches")
@page_login_required
def batches():
    return render_template("ui/batches.html", page=queries.batches_page(_page_number()))


@bp.get("/batches/<uuid:batch_id>/row")
@page_login_required
def batch_row(batch_id: uuid.UUID):
    """One batch's row: what a queued or running batch's row polls for its progress."""
    batch = get_owned(Batch, batch_id, "Batch")
    name = queries.model_name_of(batch.model_id)
    if name is None:
        raise NotFound("Batch not found")
    return render_template("ui/_batch_row.html", batch=batch, model_name=name)


@bp.post("/batches/<uuid:batch_id>/cancel")
@page_login_required
def batch_cancel(batch_id: uuid.UUID):
    """Stop a queued or running batch between chunks (409 once it has finished)."""
    service.cancel(get_owned(Batch, batch_id, "Batch"))
    flash("Batch cancelled.")
    return redirect(url_for("ui.batches"), 303)


@bp.get("/batches/<uuid:batch_id>/result")
@page_login_required
def batch_result(batch_id: uuid.UUID):
    """The result file (409 until the batch has succeeded or is partial), as the API serves it."""
    batch = get_owned(Batch, batch_id, "Batch")
    path = service.result_path(batch)
    return send_file(
        path,
        mimetype=MIMETYPES[batch.output_format],
        as_attachment=True,
        download_name=f"batch-{batch.id}.{batch.output_format}",
    )
