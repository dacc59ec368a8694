"""Delivery loops and single attempts: plain functions the Celery tasks call (tested without
Celery too).

A dispatch (beat, or the web tier after a test event) starts as many delivery loops as there are
due deliveries, up to the webhooks worker's processes; each loop claims one due delivery at a
time and sends it, until none is due or its budget is spent. Work is pulled as processes free up,
so a backlog waits in the table, not in the broker, and no lease runs out in a queue.

An attempt reads its message in a short transaction, then sends with no database connection
held, then records the outcome in another short transaction: a receiver that takes its full
timeout holds one worker process, never a connection or a row lock.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded

from shared.config import Settings
from shared.db import session_scope
from shared.webhooks import addresses, signing
from shared.webhooks import secrets as webhook_secrets
from workers.webhooks import metrics, outbox, sender

log = logging.getLogger(__name__)

# One loop's budget: then it ends, and the next dispatch starts loops again (a long backlog is
# served by fresh tasks, each with its own time limit).
LOOP_MAX_DELIVERIES = 50
LOOP_MAX_S = 30.0


def dispatch(settings: Settings) -> int:
    """How many delivery loops to start now: one per due delivery, at most one per process."""
    with session_scope() as session:
        due = outbox.due_count(session, settings.webhook_concurrency)
        pending = outbox.pending_count(session)
    metrics.pending(pending)
    return due


def deliver_due(settings: Settings) -> list[str]:
    """Claim and send due deliveries one at a time until none is due or the budget is spent;
    the outcome of each."""
    outcomes: list[str] = []
    deadline = time.monotonic() + LOOP_MAX_S
    while len(outcomes) < LOOP_MAX_DELIVERIES and time.monotonic() < deadline:
        with session_scope() as session:
            claimed = outbox.claim(session, settings.webhook_lease_s)
        if claimed is None:
            break
        outcomes.append(attempt(*claimed, settings))
    return outcomes


def attempt(delivery_id: uuid.UUID, number: int, settings: Settings) -> str:
    """Send one attempt of a delivery and record its outcome; returns the outcome's name."""
    # Renewed for the send: the attempt's own timeout, plus the lease a dead worker leaves.
    lease = settings.webhook_timeout_s + settings.webhook_lease_s
    with session_scope() as session:
        message = outbox.start(session, delivery_id, number, lease)
    if message is None:
        return "stale"
    outcome, seconds = _send(message, settings)
    with session_scope() as session:
        result = outbox.record(session, message, outcome, settings.webhook_retry_scale)
    refused = outcome.status_code is None and (outcome.error or "").startswith("refused")
    metrics.attempt("refused" if refused and result != "stale" else result, seconds)
    log.info(
        "webhook delivery %s attempt %d: %s (%s)",
        delivery_id,
        number,
        result,
        outcome.status_code or outcome.error,
    )
    return result


def prune(settings: Settings) -> int:
    """The delivery log keeps finished deliveries JOB_RETENTION_DAYS, as jobs are kept."""
    with session_scope() as session:
        return outbox.prune(session, timedelta(days=settings.job_retention_days))


def _send(message: outbox.Attempt, settings: Settings) -> tuple[outbox.Outcome, float | None]:
    """Check the receiver's addresses again (DNS may have changed since the endpoint was saved),
    sign, and POST to a checked address."""
    try:
        secret = webhook_secrets.decrypt(message.secret_ciphertext, settings)
        target, resolved = addresses.check(
            message.url,
            allow_http=settings.webhook_allow_http,
            allow_private=settings.webhook_allow_private,
        )
    except (addresses.Refused, webhook_secrets.SecretUnreadable) as exc:
        return outbox.Outcome(None, f"refused: {exc}"), None
    headers = signing.signed_headers(
        secret, str(message.delivery_id), datetime.now(UTC), message.body
    )
    try:
        answer = sender.post(target, resolved, headers, message.body, settings.webhook_timeout_s)
    except SoftTimeLimitExceeded:
        timeout = settings.webhook_timeout_s
        return outbox.Outcome(None, f"no answer within {timeout:g} s"), timeout
    return outbox.Outcome(answer.status, answer.error), answer.seconds
