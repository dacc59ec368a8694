"""Creating, cancelling and serving batches for the routes; the work itself is the workers'
(workers/batches/)."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from flask import g
from sqlalchemy import func, select, update
from werkzeug.datastructures import FileStorage

from shared.batches import ACTIVE_BATCH_STATUSES, Batch, files
from shared.celery_config import PLAN_BATCH
from shared.errors import (
    Conflict,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    ValidationFailed,
)
from shared.jobs.checks import input_columns
from shared.models import MLModel
from shared.schemas.batches import BatchUpload
from shared.store import TooLarge
from web import extensions
from web.auth.guard import current
from web.extensions import db

log = logging.getLogger(__name__)


def create(model: MLModel, form: BatchUpload) -> Batch:
    """Store the file, check its columns against the model's, record the batch and send its
    planning task; nothing stays behind when any of it fails."""
    _check_servable(model, form.return_probabilities)
    _check_quota()
    batch_id = uuid.uuid4()
    fmt, stored = _store_input(batch_id, form.file)
    try:
        keep = _check_columns(extensions.store().local_path(stored.key), fmt, model, form)
        batch = Batch(
            id=batch_id,
            owner_id=current().id,
            model_id=model.id,
            model_version=model.version,
            status="queued",
            input_key=stored.key,
            input_format=fmt,
            input_size_bytes=stored.size_bytes,
            input_sha256=stored.sha256,
            input_filename=(form.file.filename or "")[:255] or None,
            output_format=form.output_format or fmt,
            keep_columns=keep,
            return_probabilities=form.return_probabilities,
            request_id=g.get("request_id"),
            enqueued_at=func.now(),
        )
        db.session.add(batch)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        extensions.store().delete(stored.key)
        raise
    _send_plan(batch)
    db.session.refresh(batch)
    return batch


def cancel(batch: Batch) -> Batch:
    """Stop it between chunks (a chunk running finishes and its write is kept out)."""
    cancelled = db.session.execute(
        update(Batch)
        .where(Batch.id == batch.id, Batch.status.in_(ACTIVE_BATCH_STATUSES))
        .values(status="cancelled", finished_at=func.now())
    ).rowcount
    db.session.commit()
    if not cancelled:
        raise Conflict(f"Batch is {batch.status}; it cannot be cancelled", code="batch_finished")
    db.session.refresh(batch)
    return batch


def result_path(batch: Batch) -> Path:
    if batch.status not in ("succeeded", "partial") or not batch.output_key:
        raise Conflict(
            f"Batch is {batch.status}: its result exists once it has succeeded (or is partial)",
            code="batch_not_finished",
        )
    return extensions.store().local_path(batch.output_key)


def _check_servable(model: MLModel, probabilities: bool) -> None:
    if model.status != "ready":
        raise Conflict(
            f"Model is {model.status}; it cannot take predictions", code="model_not_ready"
        )
    if probabilities and not (model.output_schema or {}).get("has_proba"):
        raise ValidationFailed(
            "This model cannot return probabilities",
            code="invalid_input",
            details={"field": "return_probabilities"},
        )


def _check_quota() -> None:
    cap = extensions.settings().max_active_batches_per_user
    active = db.session.scalar(
        select(func.count())
        .select_from(Batch)
        .where(Batch.owner_id == current().id, Batch.status.in_(ACTIVE_BATCH_STATUSES))
    )
    if active >= cap:
        raise TooManyRequests(
            f"{active} of your batches are queued or running"
            f" (MAX_ACTIVE_BATCHES_PER_USER={cap}); retry when one has finished",
            code="too_many_batches",
            retry_after=30,
        )


def _store_input(batch_id: uuid.UUID, upload: FileStorage):
    """Stream the file into the store (hashed on the way, never whole in memory)."""
    settings = extensions.settings()
    fmt = files.detect_format(upload.stream.read(4))
    upload.stream.seek(0)
    try:
        stored = extensions.store().save(
            files.input_key(str(batch_id), fmt), upload.stream, max_bytes=settings.max_batch_bytes
        )
    except TooLarge:
        raise PayloadTooLarge(
            f"Batch file exceeds MAX_BATCH_MB ({settings.max_batch_mb:g} MB)"
        ) from None
    return fmt, stored


def _check_columns(path: Path, fmt: str, model: MLModel, form: BatchUpload) -> list[str]:
    """The model's input columns must all be in the file; returns the kept columns."""
    try:
        names = files.header(path, fmt)
    except files.BadFile as exc:
        raise ValidationFailed(str(exc), code="invalid_input", details={"field": "file"}) from None
    needed = [c["name"] for c in input_columns(model.input_schema or {})]
    missing = [name for name in needed if name not in names]
    if missing:
        raise ValidationFailed(
            "the file lacks columns the model takes",
            code="invalid_input",
            details={"missing": missing[:20], "columns": needed[:100]},
        )
    return _kept(form.keep_columns, names)


def _kept(spec: str | None, names: list[str]) -> list[str]:
    if not spec or not spec.strip():
        return []
    wanted = names if spec.strip() == "*" else [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise ValidationFailed(
            "keep_columns names columns the file does not have",
            code="invalid_input",
            details={"field": "keep_columns", "unexpected": unknown[:20]},
        )
    clashing = [name for name in wanted if _output_name(name)]
    if len(set(wanted)) != len(wanted) or clashing:
        raise ValidationFailed(
            "keep_columns must name each column once, and none named like an output column"
            " (`prediction`, `error`, `proba_...`)",
            code="invalid_input",
            details={"field": "keep_columns", "clashing": clashing[:20]},
        )
    return wanted


def _output_name(name: str) -> bool:
    return name in ("prediction", "error") or name.startswith("proba_")


def _send_plan(batch: Batch) -> None:
    """After the commit (the worker must find the row); undone when the broker is down, so the
    client can simply retry."""
    settings = extensions.settings()
    try:
        extensions.producer().send_task(
            PLAN_BATCH, args=[str(batch.id)], queue=settings.batch_queue, retry=False
        )
    except Exception:
        log.warning("broker unavailable; batch %s rolled back", batch.id, exc_info=True)
        db.session.delete(batch)
        db.session.commit()
        extensions.store().delete(batch.input_key)
        raise ServiceUnavailable("The job broker is unavailable; retry the batch") from None
