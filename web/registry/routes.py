"""Model registry endpoints: upload (validated by a worker), list, get, update, soft delete."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from flask import Blueprint, request
from spectree import Response

from shared.celery_config import VALIDATE_MODEL
from shared.errors import Conflict, ServiceUnavailable, ValidationFailed
from shared.models import MLModel
from shared.runtime_choice import apply_preference
from shared.schemas.common import ErrorResponse
from shared.schemas.models import ModelList, ModelOut, ModelPatch, ModelQuery, ModelUpload
from shared.signals import wait_done
from web import epoch, extensions, waits
from web.aliases import service as aliases
from web.auth.guard import current, login_required
from web.extensions import db
from web.limits import caller_key, limit, upload_limit
from web.openapi import AUTH, PROTECTED_ERRORS, errors, spec
from web.pagination import page_of
from web.registry import uploads
from web.scoping import get_owned

bp = Blueprint("models", __name__)
log = logging.getLogger(__name__)

_ERRORS = errors(*PROTECTED_ERRORS)
_OWN = errors(*PROTECTED_ERRORS, 404)


@bp.post("")
@login_required()
@limit(upload_limit, key_func=caller_key)
@uploads.upload_guard
@spec.validate(
    form=ModelUpload,
    resp=Response(
        HTTP_201=ModelOut,
        HTTP_202=ModelOut,
        **errors(*PROTECTED_ERRORS, 413, 415, 422, 429),
    ),
    tags=["models"],
    security=AUTH,
)
def upload():
    """Upload a model file; a worker validates it (201 when done in time, else 202 validating;
    422 invalid_model when it failed, the failed record readable by the id in details)."""
    model = accept_upload(request.context.form)
    settings = extensions.settings()
    with waits.slot() as waiting:  # past the cap: 202 validating at once (web/waits.py)
        if waiting and wait_done(
            "model", model.id, settings.validation_wait_s, url=settings.redis_url
        ):
            db.session.refresh(model)
    if model.status == "failed":
        raise invalid_model(model)
    return ModelOut.model_validate(model), 202 if model.status == "validating" else 201


def accept_upload(form: ModelUpload) -> MLModel:
    """Store the file, record the model (validating) and send its validation task: the API's
    upload and the web pages' (which then watch the status instead of waiting here)."""
    fmt = uploads.sniff_format(form.file)
    sample = uploads.parse_sample(form.sample)
    model = _create_model(form, fmt, sample)
    _enqueue_validation(model)
    return model


def invalid_model(model: MLModel) -> ValidationFailed:
    """A 201 would read as success to a curl user: a model that failed validation is a 422."""
    return ValidationFailed(
        f"model failed validation: {model.error}",
        code="invalid_model",
        details={"model_id": str(model.id)},
    )


def _create_model(form: ModelUpload, fmt: str, sample) -> MLModel:
    owner = current()
    model_id = uuid.uuid4()
    stored = uploads.store_artifact(model_id, fmt, form.file)
    try:
        model = MLModel(
            id=model_id,
            owner_id=owner.id,
            name=form.name,
            version=uploads.next_version(owner.id, form.name),
            status="validating",
            description=form.description,
            format=fmt,
            framework="sklearn",
            artifact_key=stored.key,
            sha256=stored.sha256,
            size_bytes=stored.size_bytes,
            sample=sample,
        )
        db.session.add(model)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        extensions.store().delete(stored.key)
        raise
    return model


def _enqueue_validation(model: MLModel) -> None:
    """Enqueue after commit (the worker must find the row); undo the upload if the broker is
    down, so the client can simply retry."""
    try:
        extensions.producer().send_task(VALIDATE_MODEL, args=[str(model.id)], retry=False)
    except Exception:
        log.warning("broker unavailable; upload %s rolled back", model.id, exc_info=True)
        db.session.delete(model)
        db.session.commit()
        extensions.store().delete(model.artifact_key)
        raise ServiceUnavailable("The job broker is unavailable; retry the upload") from None


@bp.get("")
@login_required()
@spec.validate(
    query=ModelQuery, resp=Response(HTTP_200=ModelList, **_ERRORS), tags=["models"], security=AUTH
)
def list_models():
    """The caller's models, newest first (deleted ones excluded)."""
    q: ModelQuery = request.context.query
    where = [MLModel.owner_id == current().id, MLModel.deleted_at.is_(None)]
    if q.name:
        where.append(MLModel.name == q.name)
    if q.status:
        where.append(MLModel.status == q.status)
    rows, total = page_of(MLModel, where, [MLModel.created_at.desc(), MLModel.version.desc()], q)
    items = aliases.with_aliases(list(rows))
    return ModelList(items=items, page=q.page, per_page=q.per_page, total=total)


@bp.get("/<uuid:model_id>")
@login_required()
@spec.validate(resp=Response(HTTP_200=ModelOut, **_OWN), tags=["models"], security=AUTH)
def get_model(model_id: uuid.UUID):
    """One model."""
    return aliases.with_aliases([get_owned(MLModel, model_id, "Model")])[0]


@bp.patch("/<uuid:model_id>")
@login_required()
@spec.validate(
    json=ModelPatch,
    resp=Response(HTTP_200=ModelOut, HTTP_409=ErrorResponse, **_OWN),
    tags=["models"],
    security=AUTH,
)
def patch_model(model_id: uuid.UUID):
    """Change the description, enable/disable predictions, or force the scikit-learn runtime."""
    return aliases.with_aliases([change_model(model_id, request.context.json)])[0]


def change_model(model_id: uuid.UUID, body: ModelPatch) -> MLModel:
    """Apply a patch to the caller's model (409 when its status cannot be switched)."""
    model = get_owned(MLModel, model_id, "Model", lock=True)
    if body.status is not None:
        if model.status not in ("ready", "disabled"):
            raise Conflict(f"A model in status '{model.status}' cannot be enabled or disabled")
        if body.status == "disabled":
            aliases.check_unreferenced(model)  # 409 while an alias or route points to it
        model.status = body.status
    if body.description is not None:
        model.description = body.description
    if body.runtime is not None:
        apply_preference(model, body.runtime)  # also updates model.runtime for the next job
    db.session.commit()
    epoch.bump()  # a disabled model stops taking predictions in every web process at once
    return model


@bp.delete("/<uuid:model_id>")
@login_required()
@spec.validate(
    resp=Response("HTTP_204", HTTP_409=ErrorResponse, **_OWN), tags=["models"], security=AUTH
)
def delete_model(model_id: uuid.UUID):
    """Soft delete: gone from lists and predictions; history kept; the file purged later."""
    soft_delete(model_id)
    return "", 204


def soft_delete(model_id: uuid.UUID) -> MLModel:
    """Mark the caller's model deleted; every web process stops serving it at once."""
    model = get_owned(MLModel, model_id, "Model", lock=True)
    aliases.check_unreferenced(model)  # 409 while an alias or route points to it
    model.deleted_at = datetime.now(UTC)
    db.session.commit()
    epoch.bump()
    return model
