"""Schemas of prediction jobs (docs/api.md, "Predictions (jobs)")."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from shared.schemas.common import PageQuery

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "expired"]
# A row is a list of values or an object keyed by feature name. The schema says so, but only the
# outer list is validated here: shared/jobs/checks.normalise_rows checks every row against the
# model's input schema anyway, naming the row and column, and pydantic checking 100,000 rows
# first cost 0.14 s of a 2 s request.
_ROW_SCHEMA = {
    "anyOf": [{"type": "array", "items": {}}, {"type": "object", "additionalProperties": True}]
}
Row = Annotated[Any, WithJsonSchema(_ROW_SCHEMA)]


class PredictRequest(BaseModel):
    """Rows are checked against the model's input schema after this shape check."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[Row] = Field(
        min_length=1, description="List of rows, or of objects keyed by feature name"
    )
    return_probabilities: bool = False
    return_scores: bool = Field(
        False, description="Outlier detectors: each row's score_samples (lower: more abnormal)"
    )


class PredictQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(10, ge=0, le=60, description="Seconds to wait for the result")


class WaitQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wait: float = Field(
        0, ge=0, le=60, description="Long-poll: seconds to wait for the job to finish"
    )


JobRoute = Literal["explicit", "alias", "traffic", "shadow"]


class JobQuery(PageQuery):
    model_id: uuid.UUID | None = None
    status: JobStatus | None = None
    route: JobRoute | None = Field(None, description="How the version was chosen (shadow: copies)")


class JobResult(BaseModel):
    predictions: list[Any]
    probabilities: list[list[float]] | None = None
    classes: list[Any] | None = None
    scores: list[float] | None = None


class JobError(BaseModel):
    code: str
    message: str


class Timings(BaseModel):
    queue_ms: float | None = None
    inference_ms: float | None = None
    total_ms: float | None = None


class JobOut(BaseModel):
    """The job object (docs/api.md, "The job object")."""

    id: uuid.UUID
    model_id: uuid.UUID
    model_version: int
    status: JobStatus
    result: JobResult | None
    error: JobError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    timings: Timings
    cache_hit: bool | None
    runtime: str | None = None
    attempts: int = 0
    route: JobRoute = Field(
        "explicit",
        description="How the version was chosen: the model id, an alias of its name, the "
        "name's traffic split, or a shadow copy of a traffic-split request",
    )
    shadow_of: uuid.UUID | None = Field(None, description="A shadow job's primary job")


class JobList(BaseModel):
    items: list[JobOut]
    page: int
    per_page: int
    total: int
