"""SQLAlchemy models: the one description of the schema that migrations are generated from.

Plain declarative classes (no Flask), so that workers use them without an app; the web tier
hands the same metadata to Flask-SQLAlchemy. The jobs table belongs to shared/jobs/ and the
batches tables to shared/batches/ (their rows, statements and rendering live there too); they are
imported here so that this module's metadata is the whole schema.
"""

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
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.aliases.table import AliasEvent, ModelAlias, TrafficRoute
from shared.batches.table import Batch, BatchChunk
from shared.jobs.table import Job
from shared.orm import Base, created, one_of, uuid_pk
from shared.webhooks.table import WebhookDelivery, WebhookEndpoint

__all__ = [
    "AliasEvent",
    "ApiKey",
    "Base",
    "Batch",
    "BatchChunk",
    "Job",
    "MLModel",
    "ModelAlias",
    "TrafficRoute",
    "User",
    "WebhookDelivery",
    "WebhookEndpoint",
]

MODEL_STATUSES = ("validating", "ready", "failed", "disabled")


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = uuid_pk()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"), default=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, server_default=text("false"), default=False)
    created_at: Mapped[datetime] = created()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    # SHA-256 of the whole key: the key itself is never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"), default=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created()

    __table_args__ = (Index("ix_api_keys_user_created", "user_id", "created_at"),)


class MLModel(Base):
    """An uploaded model version (table `models`)."""

    __tablename__ = "models"

    id: Mapped[uuid.UUID] = uuid_pk()
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), server_default="validating")
    description: Mapped[str | None] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(16))
    framework: Mapped[str | None] = mapped_column(String(32))
    artifact_key: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    input_schema: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    output_schema: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    info: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    runtime: Mapped[str] = mapped_column(String(16), server_default="sklearn")
    # What the owner asked for: "auto" lets validation pick the fastest equivalent runtime.
    runtime_preference: Mapped[str] = mapped_column(String(16), server_default="auto")
    # Rows the uploader attached: validation probes, and an example for the model's users.
    sample: Mapped[Any | None] = mapped_column(JSONB)
    runtime_reason: Mapped[str | None] = mapped_column(Text)
    # The ONNX artifact compiled at validation (NULL when none is served): its own key and hash.
    onnx_key: Mapped[str | None] = mapped_column(String(200))
    onnx_sha256: Mapped[str | None] = mapped_column(String(64))
    onnx_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        UniqueConstraint("owner_id", "name", "version", name="uq_models_owner_name_version"),
        CheckConstraint(one_of("status", MODEL_STATUSES), name="status"),
        Index("ix_models_owner_created", "owner_id", "created_at"),
    )
