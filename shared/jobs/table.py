"""The `jobs` table: one prediction request and its outcome (the prediction history)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.orm import Base, created, one_of, uuid_pk

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")
FINAL_JOB_STATUSES = frozenset({"succeeded", "failed", "cancelled", "expired"})
# How the job's version was chosen: its id, an alias of its name, the name's traffic split, or
# a shadow copy of a traffic-split request (shared/aliases/).
JOB_ROUTES = ("explicit", "alias", "traffic", "shadow")
# Carried in the (model_id, created_at) index so analytics never reads the wide job rows.
ANALYTICS_COLUMNS = ("status", "n_rows", "cache_hit", "queue_ms", "inference_ms", "total_ms")


# The foreign keys carry their own type: the SQL of shared/jobs/statements.py is typed from this
# table before the tables they refer to are declared.
class Job(Base):
    """One prediction request and its outcome: the prediction history."""

    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = uuid_pk()
    model_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("models.id", ondelete="CASCADE")
    )
    model_version: Mapped[int] = mapped_column(Integer)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    # Deferred: up to millions of numbers that no API answer shows; loaded only when asked for.
    inputs: Mapped[Any | None] = mapped_column(JSONB, deferred=True)  # jobs before 0005 only
    # The rows as a float64 .npy or typed Arrow columns (shared/jobs/inputs.py): parsed and
    # printed far faster than JSONB.
    input_matrix: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    n_rows: Mapped[int] = mapped_column(Integer)
    return_probabilities: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # An outlier detector's score_samples per row, asked for with the request.
    return_scores: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    worker: Mapped[str | None] = mapped_column(String(255))
    runtime: Mapped[str | None] = mapped_column(String(16))
    cache_hit: Mapped[bool | None] = mapped_column(Boolean)
    queue_ms: Mapped[float | None] = mapped_column(Float)
    inference_ms: Mapped[float | None] = mapped_column(Float)
    total_ms: Mapped[float | None] = mapped_column(Float)
    request_id: Mapped[str | None] = mapped_column(String(64))
    route: Mapped[str] = mapped_column(String(8), server_default="explicit", default="explicit")
    # A shadow job's primary: the caller's job whose rows it copied (no foreign key: either may
    # be pruned first, and the web tier writes a shadow without reading its primary).
    shadow_of: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = created()
    # Last time the id was handed to the queue; the reaper re-enqueues jobs stuck past a deadline.
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(one_of("status", JOB_STATUSES), name="status"),
        CheckConstraint(one_of("route", JOB_ROUTES), name="route"),
        Index("ix_jobs_owner_created", "owner_id", "created_at"),
        # Lists by model and the analytics endpoint: the INCLUDE columns make analytics an
        # index-only scan that never reads the wide rows (inputs, results).
        Index(
            "ix_jobs_model_created_cover",
            "model_id",
            "created_at",
            postgresql_include=list(ANALYTICS_COLUMNS),
        ),
        # The reaper and expiry scan only unfinished jobs: keep that index small.
        Index(
            "ix_jobs_unfinished",
            "status",
            "created_at",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        Index(
            "uq_jobs_owner_idempotency",
            "owner_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
    )
