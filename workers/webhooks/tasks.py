"""Celery tasks of webhooks, on their own queue (Settings.webhook_queue) served by the `webhooks`
worker: thin wrappers over workers/webhooks/delivery.py."""

from __future__ import annotations

import logging
import uuid

from shared.celery_config import DELIVER_WEBHOOK, DISPATCH_WEBHOOKS, PRUNE_WEBHOOKS
from shared.config import get_settings
from workers.celery_app import app
from workers.webhooks import delivery

log = logging.getLogger(__name__)
_settings = get_settings()
# An attempt's own clock is WEBHOOK_TIMEOUT_S; these only catch what escapes it.
_SOFT_LIMIT_S = int(_settings.webhook_timeout_s) + 10


@app.task(name=DISPATCH_WEBHOOKS, ignore_result=True, soft_time_limit=30, time_limit=45)
def dispatch_webhooks() -> int:
    """Send one attempt task per due delivery (beat, and the web tier after a test event)."""
    claimed = delivery.dispatch(_settings)
    for delivery_id, number in claimed:
        deliver_webhook.apply_async(args=[str(delivery_id), number], queue=_settings.webhook_queue)
    return len(claimed)


@app.task(
    name=DELIVER_WEBHOOK,
    acks_late=True,  # a worker killed mid-send has the attempt sent again (receivers dedupe)
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=_SOFT_LIMIT_S,
    time_limit=_SOFT_LIMIT_S + 10,
)
def deliver_webhook(delivery_id: str, attempt: int) -> str:
    return delivery.attempt(uuid.UUID(delivery_id), attempt, _settings)


@app.task(name=PRUNE_WEBHOOKS, ignore_result=True, soft_time_limit=300, time_limit=330)
def prune_webhooks() -> int:
    removed = delivery.prune(_settings)
    if removed:
        log.info("pruned %d webhook deliveries", removed)
    return removed
