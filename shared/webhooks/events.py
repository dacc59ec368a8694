"""An event's body, `{type, timestamp, data}`: `data` is the job, batch or model object exactly as
the API renders it (by the renderers of shared/jobs, shared/batches and the model schema, never a
second rendering), read when the delivery is first attempted and then sent unchanged."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy.orm import Session

from shared.batches.render import batch_out
from shared.batches.table import Batch
from shared.jobs.render import job_out
from shared.jobs.table import Job
from shared.models import MLModel
from shared.schemas.models import ModelOut
from shared.webhooks.table import TEST_EVENT


def body(event: str, created_at: datetime, data: dict[str, Any] | None) -> bytes:
    """The JSON body of an event that happened at `created_at`."""
    stamp = created_at.isoformat().replace("+00:00", "Z")
    return orjson.dumps({"type": event, "timestamp": stamp, "data": data})


def test_data(endpoint_id: uuid.UUID) -> dict[str, Any]:
    """A test event's `data`: which endpoint it was sent to."""
    return {"endpoint_id": str(endpoint_id), "message": "A test event: this endpoint works."}


def subject_data(
    session: Session, event: str, subject_id: uuid.UUID | None
) -> dict[str, Any] | None:
    """The API object an event is about, read now."""
    if event == TEST_EVENT or subject_id is None:
        return None
    rendered: BaseModel | None = None
    if event.startswith("job."):
        job = session.get(Job, subject_id)
        rendered = job_out(job) if job is not None else None
    elif event.startswith("batch."):
        batch = session.get(Batch, subject_id)
        rendered = batch_out(batch) if batch is not None else None
    else:
        model = session.get(MLModel, subject_id)
        rendered = ModelOut.model_validate(model) if model is not None else None
    # A subject gone before its first attempt (its owner deleted it) still names itself.
    return rendered.model_dump(mode="json") if rendered is not None else {"id": str(subject_id)}
