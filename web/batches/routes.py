"""Batch endpoints: submit a file for a model, read, list, cancel, download the result."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from functools import wraps
from pathlib import Path
from typing import Any

from flask import Blueprint, request
from spectree import Response

from shared.batches import Batch
from shared.batches.render import batch_out
from shared.errors import BadRequest
from shared.models import MLModel
from shared.schemas.batches import BatchList, BatchOut, BatchQuery, BatchUpload
from web import extensions
from web.aliases.resolve import resolve
from web.auth.guard import current, login_required
from web.batches import service
from web.limits import caller_key, limit, upload_limit
from web.openapi import AUTH, PROTECTED_ERRORS, errors, spec
from web.pagination import page_of
from web.registry.uploads import FORM_OVERHEAD
from web.scoping import get_owned

models_bp = Blueprint("model_batches", __name__)
bp = Blueprint("batches", __name__)

_OWN = errors(*PROTECTED_ERRORS, 404)
BLOCK_BYTES = 1 << 20
_MIMETYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


def _batch_guard(view: Any) -> Any:
    """Before the form is parsed: multipart only, and the body limit raised to MAX_BATCH_MB
    (werkzeug spools the file part to disk, and answers 413 as soon as the stream passes it)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if request.mimetype != "multipart/form-data":
            raise BadRequest("A batch must be multipart/form-data", code="unsupported_content_type")
        request.max_content_length = extensions.settings().max_batch_bytes + FORM_OVERHEAD
        return view(*args, **kwargs)

    return wrapper


@models_bp.post("/<string:ref>/batches")
@login_required()
@limit(upload_limit, key_func=caller_key)
@_batch_guard
@spec.validate(
    form=BatchUpload,
    resp=Response(HTTP_202=BatchOut, **errors(*PROTECTED_ERRORS, 404, 409, 413, 422, 429)),
    tags=["batches"],
    security=AUTH,
)
def submit(ref: str):
    """Predict every row of a CSV (with a header row) or Parquet file; 202 with the batch.
    `ref` is the model's id, or its name (`name`, `name@alias`, `name@v3`: docs/aliases.md)."""
    model = get_owned(MLModel, resolve(ref, with_shadow=False).model.id, "Model")
    batch = service.create(model, request.context.form)
    return batch_out(batch), 202, {"Location": f"/api/v1/batches/{batch.id}"}


@bp.get("")
@login_required()
@spec.validate(
    query=BatchQuery,
    resp=Response(HTTP_200=BatchList, **errors(*PROTECTED_ERRORS)),
    tags=["batches"],
    security=AUTH,
)
def list_batches():
    """The caller's batches, newest first."""
    q: BatchQuery = request.context.query
    where = [Batch.owner_id == current().id]
    if q.model_id:
        where.append(Batch.model_id == q.model_id)
    if q.status:
        where.append(Batch.status == q.status)
    rows, total = page_of(Batch, where, [Batch.created_at.desc()], q)
    return BatchList(
        items=[batch_out(b) for b in rows], page=q.page, per_page=q.per_page, total=total
    )


@bp.get("/<uuid:batch_id>")
@login_required()
@spec.validate(resp=Response(HTTP_200=BatchOut, **_OWN), tags=["batches"], security=AUTH)
def get_batch(batch_id: uuid.UUID):
    """One batch, with its progress."""
    return batch_out(get_owned(Batch, batch_id, "Batch"))


@bp.delete("/<uuid:batch_id>")
@login_required()
@spec.validate(
    resp=Response(HTTP_200=BatchOut, **errors(*PROTECTED_ERRORS, 404, 409)),
    tags=["batches"],
    security=AUTH,
)
def cancel_batch(batch_id: uuid.UUID):
    """Cancel a queued or running batch (409 once it has finished)."""
    return batch_out(service.cancel(get_owned(Batch, batch_id, "Batch")))


@bp.get("/<uuid:batch_id>/result")
@login_required()
# Documented, not validated: the answer is a file, streamed from disk in blocks. (A generator,
# not send_file: spectree reads a Response object's whole body, a generator it passes through.)
@spec.validate(
    resp=Response(**_OWN, **errors(409)), tags=["batches"], security=AUTH, skip_validation=True
)
def download(batch_id: uuid.UUID):
    """The result file, streamed (409 until the batch has succeeded or is partial)."""
    batch = get_owned(Batch, batch_id, "Batch")
    path = service.result_path(batch)
    headers = {
        "Content-Type": _MIMETYPES[batch.output_format],
        "Content-Length": str(path.stat().st_size),
        "Content-Disposition": f'attachment; filename="batch-{batch.id}.{batch.output_format}"',
    }
    return _blocks(path), 200, headers


def _blocks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as stream:
        while block := stream.read(BLOCK_BYTES):
            yield block
