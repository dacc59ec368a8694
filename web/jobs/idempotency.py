"""Idempotency-Key: a retried submission within 24 hours answers the job it created the first
time, and a different request under the same key is refused (409)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
from sqlalchemy import select

from shared.errors import Conflict, ValidationFailed
from shared.jobs import Job, inputs
from shared.jobs.inputs import Rows
from web.auth.guard import current
from web.extensions import db

WINDOW = timedelta(hours=24)
MAX_KEY_CHARS = 255


def check_key(key: str) -> None:
    """1..255 characters, no NUL: PostgreSQL refuses NUL in text, so a header holding one must
    not reach the INSERT."""
    if not 1 <= len(key) <= MAX_KEY_CHARS or "\x00" in key:
        raise ValidationFailed(
            "Idempotency-Key must be 1..255 characters, no NUL", code="invalid_header"
        )


def request_hash(model_id: uuid.UUID, rows: Rows, probabilities: bool, scores: bool = False) -> str:
    """What a retry must repeat to be the same request: the model, the rows and the flags
    (`scores` only when asked, so that keys stored before it existed still match)."""
    if not isinstance(rows, np.ndarray):  # typed columns: their Arrow bytes say it all
        rows = hashlib.sha256(inputs.encode(rows)).hexdigest()
    canonical = orjson.dumps(
        {"model": str(model_id), "rows": rows, "proba": probabilities}
        | ({"scores": True} if scores else {}),
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    return hashlib.sha256(canonical).hexdigest()


def replay(key: str, digest: str) -> Job | None:
    """The job created earlier under this key (within 24 h); 409 if the body differs."""
    job = db.session.scalar(
        select(Job).where(Job.owner_id == current().id, Job.idempotency_key == key)
    )
    if job is None:
        return None
    if job.created_at < datetime.now(UTC) - WINDOW:
        job.idempotency_key = None  # expired: the key is free again
        db.session.flush()
        return None
    if job.request_hash != digest:
        raise Conflict(
            "Idempotency-Key was used with a different request", code="idempotency_conflict"
        )
    return job
