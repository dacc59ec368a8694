"""Schemas of batches, bulk file predictions (docs/api.md, "Batches")."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.common import PageQuery
from shared.schemas.models import UploadedFile

BatchStatus = Literal["queued", "running", "succeeded", "partial", "failed", "cancelled"]
FileFormat = Literal["csv", "parquet"]


class BatchUpload(BaseModel):
    """multipart/form-data fields of a batch."""

    file: UploadedFile
    output_format: FileFormat | None = Field(None, description="Default: the input's format")
    keep_columns: str | None = Field(
        None,
        max_length=10_000,
        description="Comma-separated input columns copied to the output, or `*` for all",
    )
    return_probabilities: bool = False


class BatchInput(BaseModel):
    format: FileFormat
    size_bytes: int
    filename: str | None


class BatchOut(BaseModel):
    """The batch object (docs/api.md, "The batch object")."""

    id: uuid.UUID
    model_id: uuid.UUID
    model_version: int
    status: BatchStatus
    rows_total: int | None
    rows_done: int
    rows_failed: int
    input: BatchInput
    output_format: FileFormat
    keep_columns: list[str]
    return_probabilities: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


class BatchList(BaseModel):
    items: list[BatchOut]
    page: int
    per_page: int
    total: int


class BatchQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    model_id: uuid.UUID | None = None
    status: BatchStatus | None = None
