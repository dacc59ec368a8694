"""Celery tasks of webhooks, on their own queue (Settings.webhook_queue) served by the `webhooks`
worker: thin wrappers over workers/webhooks/delivery.py."""

from __future__ import annotations

import logging

from shared.celery_config import DISPATCH_WEBHOOKS, PRUNE_WEBHOOKS, PULL_WEBHOOKS
from shared.config import get_settings
from workers.celery_app import app
from workers.webhooks import delivery

log = logging.getLogger(__name__)
_settings = get_settings()
# A loop stops claiming after LOOP_MAX_S; its last attempt has WEBHOOK_TIMEOUT_S of its own.
# The limits only catch what escapes both.
_LOOP_SOFT_LIMIT_S = int(delivery.LOOP_MAX_S + _settings.webhook_timeout_s) + 15
# A loop not started by then is dropped: the next dispatch counts the due rows again.
_LOOP_EXPIRES_S = max(5.0, 3 * _settings.webhook_dispatch_interval_s)


@app.task(name=DISPATCH_WEBHOOKS, ignore_result=True, soft_time_limit=30, time_limit=45)
def dispatch_webhooks() -> int:
    """Start delivery loops for the due deliveries (beat, and the web tier after a test event
    or a redelivery)."""
    loops = delivery.dispatch(_settings)
    for _ in range(loops):
        pull_webhooks.apply_async(queue=_settings.webhook_queue, expires=_LOOP_EXPIRES_S)
    return loops


# Acknowledged on receipt: a loop killed with its worker is not worth running again (its claimed
# delivery is due again when its lease runs out, and the next dispatch starts new loops).
@app.task(
    name=PULL_WEBHOOKS,
    acks_late=False,
    ignore_result=True,
    soft_time_limit=_LOOP_SOFT_LIMIT_S,
    time_limit=_LOOP_SOFT_LIMIT_S + 10,
)
def pull_webhooks() -> int:
    return len(delivery.deliver_due(_settings))


@app.task(name=PRUNE_WEBHOOKS, ignore_result=True, soft_time_limit=300, time_limit=330)
def prune_webhooks() -> int:
    removed = delivery.prune(_settings)
    if removed:
        log.info("pruned %d webhook deliveries", removed)
    return removed
