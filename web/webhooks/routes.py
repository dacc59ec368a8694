"""Webhook endpoints: create (the secret shown once), list, read, change, delete; their delivery
log, a test event and manual redelivery. Another user's endpoint is a 404 on every route."""

from __future__ import annotations

import uuid

from flask import Blueprint, request
from spectree import Response

from shared.schemas.common import PageQuery
from shared.webhooks import WebhookDelivery, WebhookEndpoint
from shared.webhooks.schemas import (
    Accepted,
    DeliveryList,
    DeliveryOut,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookOut,
    WebhookPatch,
)
from web.auth.guard import current, login_required
from web.openapi import AUTH, PROTECTED_ERRORS, errors, spec
from web.pagination import page_of
from web.scoping import get_owned
from web.webhooks import service

bp = Blueprint("webhooks", __name__)

_OWN = errors(*PROTECTED_ERRORS, 404)
_TAGS = ["webhooks"]


def _owned(webhook_id: uuid.UUID, *, lock: bool = False) -> WebhookEndpoint:
    return get_owned(WebhookEndpoint, webhook_id, "Webhook", lock=lock)


@bp.post("")
@login_required()
@spec.validate(
    json=WebhookCreate,
    resp=Response(HTTP_201=WebhookCreated, **errors(*PROTECTED_ERRORS, 404, 422, 429)),
    tags=_TAGS,
    security=AUTH,
)
def create():
    """Register a receiver URL for some events; the answer carries its signing secret, once."""
    endpoint, secret = service.create(request.context.json)
    body = WebhookCreated(**WebhookOut.model_validate(endpoint).model_dump(), secret=secret)
    return body, 201, {"Location": f"/api/v1/webhooks/{endpoint.id}"}


@bp.get("")
@login_required()
@spec.validate(
    query=PageQuery,
    resp=Response(HTTP_200=WebhookList, **errors(*PROTECTED_ERRORS)),
    tags=_TAGS,
    security=AUTH,
)
def list_webhooks():
    """The caller's endpoints, newest first."""
    q: PageQuery = request.context.query
    rows, total = page_of(
        WebhookEndpoint,
        [WebhookEndpoint.owner_id == current().id],
        [WebhookEndpoint.created_at.desc(), WebhookEndpoint.id],
        q,
    )
    items = [WebhookOut.model_validate(e) for e in rows]
    return WebhookList(items=items, page=q.page, per_page=q.per_page, total=total)


@bp.get("/<uuid:webhook_id>")
@login_required()
@spec.validate(resp=Response(HTTP_200=WebhookOut, **_OWN), tags=_TAGS, security=AUTH)
def get_webhook(webhook_id: uuid.UUID):
    """One endpoint (without its secret)."""
    return WebhookOut.model_validate(_owned(webhook_id))


@bp.patch("/<uuid:webhook_id>")
@login_required()
@spec.validate(
    json=WebhookPatch,
    resp=Response(HTTP_200=WebhookOut, **errors(*PROTECTED_ERRORS, 404, 422)),
    tags=_TAGS,
    security=AUTH,
)
def patch_webhook(webhook_id: uuid.UUID):
    """Change its URL or events, pause it, or resume one the service disabled."""
    endpoint = service.update_endpoint(_owned(webhook_id, lock=True), request.context.json)
    return WebhookOut.model_validate(endpoint)


@bp.delete("/<uuid:webhook_id>")
@login_required()
@spec.validate(resp=Response("HTTP_204", **_OWN), tags=_TAGS, security=AUTH)
def delete_webhook(webhook_id: uuid.UUID):
    """Delete it and its delivery log; nothing more is sent to it."""
    service.delete(_owned(webhook_id))
    return "", 204


@bp.get("/<uuid:webhook_id>/deliveries")
@login_required()
@spec.validate(
    query=PageQuery, resp=Response(HTTP_200=DeliveryList, **_OWN), tags=_TAGS, security=AUTH
)
def list_deliveries(webhook_id: uuid.UUID):
    """Its delivery log, newest first: status, attempts, last answer, next attempt."""
    endpoint = _owned(webhook_id)
    q: PageQuery = request.context.query
    rows, total = page_of(
        WebhookDelivery,
        [WebhookDelivery.endpoint_id == endpoint.id],
        [WebhookDelivery.created_at.desc(), WebhookDelivery.id],
        q,
    )
    items = [DeliveryOut.model_validate(d) for d in rows]
    return DeliveryList(items=items, page=q.page, per_page=q.per_page, total=total)


@bp.post("/<uuid:webhook_id>/test")
@login_required()
@spec.validate(resp=Response(HTTP_202=Accepted, **_OWN), tags=_TAGS, security=AUTH)
def send_test(webhook_id: uuid.UUID):
    """Send it a `webhook.test` event (see its delivery log for the outcome)."""
    delivery = service.send_test(_owned(webhook_id))
    return Accepted(delivery_id=delivery.id, status="pending"), 202


@bp.post("/<uuid:webhook_id>/deliveries/<uuid:delivery_id>/redeliver")
@login_required()
@spec.validate(resp=Response(HTTP_202=Accepted, **_OWN), tags=_TAGS, security=AUTH)
def redeliver(webhook_id: uuid.UUID, delivery_id: uuid.UUID):
    """Send an event again now, with the same `webhook-id` and body."""
    delivery = service.redeliver(_owned(webhook_id), delivery_id)
    return Accepted(delivery_id=delivery.id, status="pending"), 202
