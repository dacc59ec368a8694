"""Request and answer bodies of the webhooks routes (docs/webhooks.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.webhooks.addresses import MAX_URL_CHARS

Event = Literal["job.succeeded", "job.failed", "batch.finished", "model.ready", "model.failed"]
DeliveryStatus = Literal["pending", "delivered", "failed"]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_CHARS)
    events: list[Event] = Field(min_length=1, max_length=5)
    model_id: uuid.UUID | None = Field(
        None, description="Only this model version's jobs, batches and validation"
    )


class WebhookPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, min_length=1, max_length=MAX_URL_CHARS)
    events: list[Event] | None = Field(None, min_length=1, max_length=5)
    is_active: bool | None = Field(
        None, description="false pauses it (pending deliveries fail); true resumes it"
    )


class WebhookOut(BaseModel):
    """An endpoint; its secret is shown only in the answer that created it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    events: list[Event]
    model_id: uuid.UUID | None
    is_active: bool
    disabled_reason: Literal["gone", "failing"] | None = Field(
        None,
        description="Why the service disabled it: its receiver answered 410 (`gone`), or every"
        " delivery failed for 24 hours (`failing`)",
    )
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="`whsec_` + base64: the signing key, shown only here")


class WebhookList(BaseModel):
    items: list[WebhookOut]
    page: int
    per_page: int
    total: int


class DeliveryOut(BaseModel):
    """One event sent (or to be sent) to an endpoint; its id is the `webhook-id` header."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    event: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
    page: int
    per_page: int
    total: int


class Accepted(BaseModel):
    """A delivery queued (test event, redelivery)."""

    delivery_id: uuid.UUID
    status: DeliveryStatus
