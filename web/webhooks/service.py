"""Endpoints and deliveries for the routes: saving an endpoint checks its URL (https, public
addresses), makes its secret and stores it encrypted; a test event or a redelivery is a pending
row the webhooks worker sends, asked for at once after the commit."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import func, select, update

from shared.celery_config import DISPATCH_WEBHOOKS
from shared.errors import NotFound, TooManyRequests, ValidationFailed
from shared.models import MLModel
from shared.webhooks import TEST_EVENT, WebhookDelivery, WebhookEndpoint, addresses, events
from shared.webhooks import secrets as webhook_secrets
from shared.webhooks.schemas import WebhookCreate, WebhookPatch
from web import extensions
from web.auth.guard import current
from web.extensions import db
from web.scoping import get_owned

log = logging.getLogger(__name__)


def create(body: WebhookCreate) -> tuple[WebhookEndpoint, str]:
    """The new endpoint and its secret in clear (the only time it is shown)."""
    settings = extensions.settings()
    _check_quota(settings.max_webhooks_per_user)
    if body.model_id is not None:
        get_owned(MLModel, body.model_id, "Model")
    check_url(body.url)
    secret = webhook_secrets.new_secret()
    endpoint = WebhookEndpoint(
        owner_id=current().id,
        url=body.url,
        events=list(dict.fromkeys(body.events)),
        model_id=body.model_id,
        secret_ciphertext=webhook_secrets.encrypt(secret, settings),
    )
    db.session.add(endpoint)
    db.session.commit()
    return endpoint, secret


def update_endpoint(endpoint: WebhookEndpoint, body: WebhookPatch) -> WebhookEndpoint:
    if body.url is not None:
        check_url(body.url)
        endpoint.url = body.url
    if body.events is not None:
        endpoint.events = list(dict.fromkeys(body.events))
    if body.is_active is True:
        endpoint.is_active, endpoint.disabled_reason, endpoint.failing_since = True, None, None
    elif body.is_active is False and endpoint.is_active:
        endpoint.is_active = False
        _fail_pending(endpoint.id, "endpoint disabled by its owner")
    db.session.commit()
    return endpoint


def delete(endpoint: WebhookEndpoint) -> None:
    db.session.delete(endpoint)
    db.session.commit()


def send_test(endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A `webhook.test` event to this endpoint, its body rendered now."""
    delivery = WebhookDelivery(id=uuid.uuid4(), endpoint_id=endpoint.id, event=TEST_EVENT)
    db.session.add(delivery)
    db.session.flush()  # the row's created_at is the event's timestamp
    db.session.refresh(delivery)
    data = events.test_data(endpoint.id)
    delivery.body = events.body(TEST_EVENT, delivery.created_at, data).decode()
    db.session.commit()
    kick()
    return delivery


def redeliver(endpoint: WebhookEndpoint, delivery_id: uuid.UUID) -> WebhookDelivery:
    """Send an event again now, with its id and body unchanged; once past its retry window, a
    failed attempt is final."""
    delivery = db.session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint.id)
        .with_for_update()
    )
    if delivery is None:
        raise NotFound("Delivery not found")
    delivery.status, delivery.next_attempt_at, delivery.delivered_at = "pending", func.now(), None
    db.session.commit()
    db.session.refresh(delivery)
    kick()
    return delivery


def check_url(url: str) -> None:
    """422 for a URL deliveries may not go to (the worker checks again at every attempt)."""
    settings = extensions.settings()
    try:
        addresses.check(
            url,
            allow_http=settings.webhook_allow_http,
            allow_private=settings.webhook_allow_private,
        )
    except addresses.Refused as exc:
        raise ValidationFailed(
            f"This webhook URL is refused: {exc}",
            code="invalid_webhook_url",
            details={"field": "url"},
        ) from None


def kick() -> None:
    """Ask the webhooks worker to look for due deliveries now (after the commit) instead of at
    its next beat; a broker outage only delays them until then."""
    settings = extensions.settings()
    try:
        extensions.producer().send_task(
            DISPATCH_WEBHOOKS, queue=settings.webhook_queue, retry=False, expires=60
        )
    except Exception:
        log.warning("broker unavailable; deliveries wait for the next dispatch", exc_info=True)


def _check_quota(cap: int) -> None:
    count = db.session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.owner_id == current().id)
    )
    if count >= cap:
        raise TooManyRequests(
            f"You have {count} webhook endpoints (MAX_WEBHOOKS_PER_USER={cap}); delete one first",
            code="too_many_webhooks",
            retry_after=3600,
        )


def _fail_pending(endpoint_id: uuid.UUID, reason: str) -> Any:
    return db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
        .values(status="failed", next_attempt_at=None, last_error=reason)
    )
