"""The `webhook_endpoints` table (a user's receiver URLs and the events they take) and
`webhook_deliveries` (the outbox: one row per event and endpoint, written by a database trigger in
the transaction that finishes the job, batch or model, then sent and retried by the webhooks
worker)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.orm import Base, created, one_of, uuid_pk

# The events an endpoint may subscribe to; the trigger of migration 0009 writes exactly these.
EVENTS = ("job.succeeded", "job.failed", "batch.finished", "model.ready", "model.failed")
TEST_EVENT = "webhook.test"
DELIVERY_STATUSES = ("pending", "delivered", "failed")
# Why an endpoint stopped: its receiver answered 410 Gone, or it failed for the retry window.
DISABLED_REASONS = ("gone", "failing")


class WebhookEndpoint(Base):
    """A user's receiver URL, the events it takes and the secret its deliveries are signed with."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = uuid_pk()
    owner_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    # Only this model version's jobs, batches and validation (NULL: every model of the owner).
    model_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("models.id", ondelete="CASCADE")
    )
    # The signing secret encrypted with the settings' key (shared/webhooks/secrets.py).
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"), default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(16))
    # First failed attempt since the last delivered one: the endpoint's failing streak.
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        CheckConstraint(
            "cardinality(events) > 0 AND events <@ ARRAY["
            + ", ".join(f"'{e}'" for e in EVENTS)
            + "]::varchar[]",
            name="events",
        ),
        CheckConstraint(
            f"disabled_reason IS NULL OR {one_of('disabled_reason', DISABLED_REASONS)}",
            name="disabled_reason",
        ),
        Index("ix_webhook_endpoints_owner_created", "owner_id", "created_at"),
        # The trigger's look-up on every finished job: the owner's active endpoints only.
        Index(
            "ix_webhook_endpoints_owner_active",
            "owner_id",
            postgresql_where=text("is_active"),
        ),
    )


class WebhookDelivery(Base):
    """One event to one endpoint: its body once rendered, and where its delivery stands."""

    __tablename__ = "webhook_deliveries"

    # Also the message's `webhook-id`: the same on every attempt, for receivers to deduplicate.
    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        primary_key=True,
        default=uuid.uuid4,
        server_default=text("gen_random_uuid()"),
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event: Mapped[str] = mapped_column(String(32))
    # The job, batch or model the event is about (NULL for a test event).
    subject_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # The exact JSON body sent, rendered at the first attempt and sent unchanged on every retry.
    body: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="pending", default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    # When the dispatcher takes it next; while an attempt runs, the end of that attempt's lease.
    next_attempt_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created()

    __table_args__ = (
        CheckConstraint(one_of("status", DELIVERY_STATUSES), name="status"),
        CheckConstraint(one_of("event", (*EVENTS, TEST_EVENT)), name="event"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_created", "created_at"),
    )
