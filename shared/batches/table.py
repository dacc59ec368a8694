"""The `batches` table (a bulk file prediction) and `batch_chunks` (its slices of rows, each
predicted by one worker task and written once, fenced by its attempt number)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.orm import Base, created, one_of, uuid_pk

BATCH_STATUSES = ("queued", "running", "succeeded", "partial", "failed", "cancelled")
FINAL_BATCH_STATUSES = frozenset({"succeeded", "partial", "failed", "cancelled"})
ACTIVE_BATCH_STATUSES = ("queued", "running")
CHUNK_STATUSES = ("queued", "running", "done")
FORMATS = ("csv", "parquet")


class Batch(Base):
    """A file of rows to predict, its progress and its result file."""

    __tablename__ = "batches"

    id: Mapped[uuid.UUID] = uuid_pk()
    owner_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    model_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("models.id", ondelete="CASCADE")
    )
    model_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    input_key: Mapped[str] = mapped_column(String(200))
    input_format: Mapped[str] = mapped_column(String(16))
    input_size_bytes: Mapped[int] = mapped_column(BigInteger)
    input_sha256: Mapped[str] = mapped_column(String(64))
    input_filename: Mapped[str | None] = mapped_column(String(255))
    output_format: Mapped[str] = mapped_column(String(16))
    output_key: Mapped[str | None] = mapped_column(String(200))
    # Input columns copied to the output, in the file's order.
    keep_columns: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    return_probabilities: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    rows_total: Mapped[int | None] = mapped_column(BigInteger)
    rows_done: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    rows_failed: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    chunks_total: Mapped[int | None] = mapped_column(Integer)
    chunks_done: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    # Deliveries of the planning task: a file that kills its worker every time fails the batch.
    attempts: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    error: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = created()
    # Last time a task was sent for it (planning, or the result): the reaper's clock.
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(one_of("status", BATCH_STATUSES), name="status"),
        CheckConstraint(one_of("input_format", FORMATS), name="input_format"),
        CheckConstraint(one_of("output_format", FORMATS), name="output_format"),
        Index("ix_batches_owner_created", "owner_id", "created_at"),
        Index("ix_batches_model_created", "model_id", "created_at"),
        Index(
            "ix_batches_active",
            "status",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )


class BatchChunk(Base):
    """Rows [row_start, row_start + row_count) of a batch: one row group of its rows file."""

    __tablename__ = "batch_chunks"

    batch_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    row_start: Mapped[int] = mapped_column(BigInteger)
    row_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    # The fencing token: a chunk's result is written only by the run that claimed it last.
    attempts: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    rows_failed: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    part_key: Mapped[str | None] = mapped_column(String(200))
    worker: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )

    __table_args__ = (
        CheckConstraint(one_of("status", CHUNK_STATUSES), name="status"),
        Index(
            "ix_batch_chunks_open",
            "status",
            "updated_at",
            postgresql_where=text("status <> 'done'"),
        ),
    )
