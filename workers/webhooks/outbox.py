"""The outbox's SQL: claim a due delivery (FOR UPDATE SKIP LOCKED, so concurrent delivery loops
never take the same row), start its attempt, record the outcome. Each claim is a new attempt whose
number fences what follows: an attempt whose lease ran out (its row claimed again) finds another
number and records nothing.

A claim moves `next_attempt_at` one lease ahead: if the worker running the attempt dies, the row
is simply due again then. Rows are written by the triggers of migration 0009 in the transaction
that finished their job, batch or model, so nothing is lost between the two.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.webhooks import events, schedule

# Due rows looked at per claim, in due order: the claim picks among their endpoints.
SCAN = 200

# One due delivery of an endpoint drawn at random among the endpoints with due deliveries (the
# oldest of that endpoint's): a receiver with a backlog, or a slow one, gets its share of the
# delivery loops, not all of them, while other endpoints' events wait.
_CLAIM = text("""
    WITH due AS (
        SELECT id, endpoint_id, next_attempt_at FROM webhook_deliveries
        WHERE status = 'pending' AND next_attempt_at <= now()
        ORDER BY next_attempt_at
        LIMIT :scan
        FOR UPDATE SKIP LOCKED
    ), oldest AS (
        SELECT DISTINCT ON (endpoint_id) id FROM due ORDER BY endpoint_id, next_attempt_at
    ), drawn AS (
        SELECT id FROM oldest ORDER BY random() LIMIT 1
    )
    UPDATE webhook_deliveries AS d
    SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => :lease)
    FROM drawn WHERE d.id = drawn.id
    RETURNING d.id, d.attempts
""")

_START = text("""
    SELECT d.event, d.subject_id, d.body, d.created_at, d.endpoint_id,
        e.url, e.secret_ciphertext
    FROM webhook_deliveries AS d JOIN webhook_endpoints AS e ON e.id = d.endpoint_id
    WHERE d.id = :id AND d.attempts = :attempt AND d.status = 'pending'
    FOR UPDATE OF d
""")


@dataclass(frozen=True)
class Attempt:
    """What one attempt sends, read at its start."""

    delivery_id: uuid.UUID
    attempt: int
    endpoint_id: uuid.UUID
    url: str
    secret_ciphertext: str
    body: bytes
    created_at: datetime


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None


def claim(session: Session, lease_s: float) -> tuple[uuid.UUID, int] | None:
    """A due delivery, now a new attempt leased for `lease_s`: (id, attempt number)."""
    row = session.execute(_CLAIM, {"scan": SCAN, "lease": lease_s}).one_or_none()
    return (row.id, row.attempts) if row is not None else None


def due_count(session: Session, cap: int) -> int:
    """Deliveries due now (counted up to `cap`)."""
    return session.execute(
        text(
            "SELECT count(*) FROM (SELECT 1 FROM webhook_deliveries"
            " WHERE status = 'pending' AND next_attempt_at <= now() LIMIT :cap) AS due"
        ),
        {"cap": cap},
    ).scalar_one()


def pending_count(session: Session) -> int:
    return session.execute(
        text("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
    ).scalar_one()


def start(session: Session, delivery_id: uuid.UUID, attempt: int, lease_s: float) -> Attempt | None:
    """The attempt's message (its body rendered and kept at the first attempt), with its lease
    renewed for the send; None when this attempt is no longer the row's current one."""
    row = session.execute(_START, {"id": delivery_id, "attempt": attempt}).one_or_none()
    if row is None:
        return None
    body = row.body
    if body is None:
        data = events.subject_data(session, row.event, row.subject_id)
        body = events.body(row.event, row.created_at, data).decode()
    session.execute(
        text(
            "UPDATE webhook_deliveries SET body = :body, last_attempt_at = now(),"
            " next_attempt_at = now() + make_interval(secs => :lease) WHERE id = :id"
        ),
        {"body": body, "lease": lease_s, "id": delivery_id},
    )
    return Attempt(
        delivery_id,
        attempt,
        row.endpoint_id,
        row.url,
        row.secret_ciphertext,
        body.encode(),
        row.created_at,
    )


def record(session: Session, attempt: Attempt, outcome: Outcome, scale: float) -> str:
    """Write an attempt's outcome, fenced by its number; returns what it came to: delivered,
    retrying, failed (window over), gone (410: endpoint disabled) or stale."""
    now = session.execute(text("SELECT now()")).scalar_one()
    code = outcome.status_code
    if code is not None and 200 <= code < 300:
        return _delivered(session, attempt, code)
    if code == 410:
        _finish(session, attempt, "failed", outcome)
        disable(session, attempt.endpoint_id, "gone", "the receiver answered 410 Gone")
        return "gone"
    retry_at = schedule.next_attempt(attempt.created_at, now, attempt.attempt, scale)
    state = _finish(session, attempt, "pending" if retry_at else "failed", outcome, retry_at)
    if state and _streak_too_long(session, attempt.endpoint_id, now, scale):
        disable(session, attempt.endpoint_id, "failing", "the endpoint failed for 24 hours")
        return "failed"
    return ("retrying" if retry_at else "failed") if state else "stale"


def disable(session: Session, endpoint_id: uuid.UUID, reason: str, why: str) -> None:
    """Stop an endpoint, marked with the reason; its pending deliveries fail."""
    session.execute(
        text(
            "UPDATE webhook_endpoints SET is_active = false, disabled_reason = :reason,"
            " updated_at = now() WHERE id = :id"
        ),
        {"reason": reason, "id": endpoint_id},
    )
    session.execute(
        text(
            "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL,"
            " last_error = coalesce(last_error, :why)"
            " WHERE endpoint_id = :id AND status = 'pending'"
        ),
        {"why": why, "id": endpoint_id},
    )


def _delivered(session: Session, attempt: Attempt, code: int) -> str:
    done = session.execute(
        text(
            "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(),"
            " last_status_code = :code, last_error = NULL, next_attempt_at = NULL"
            " WHERE id = :id AND attempts = :attempt AND status = 'pending'"
        ),
        {"code": code, "id": attempt.delivery_id, "attempt": attempt.attempt},
    ).rowcount
    session.execute(
        text(
            "UPDATE webhook_endpoints SET failing_since = NULL"
            " WHERE id = :id AND failing_since IS NOT NULL"
        ),
        {"id": attempt.endpoint_id},
    )
    return "delivered" if done else "stale"


def _finish(
    session: Session,
    attempt: Attempt,
    status: str,
    outcome: Outcome,
    retry_at: datetime | None = None,
) -> bool:
    return bool(
        session.execute(
            text(
                "UPDATE webhook_deliveries SET status = :status, next_attempt_at = :retry_at,"
                " last_status_code = :code, last_error = :error"
                " WHERE id = :id AND attempts = :attempt AND status = 'pending'"
            ),
            {
                "status": status,
                "retry_at": retry_at,
                "code": outcome.status_code,
                "error": outcome.error,
                "id": attempt.delivery_id,
                "attempt": attempt.attempt,
            },
        ).rowcount
    )


def _streak_too_long(session: Session, endpoint_id: uuid.UUID, now: datetime, scale: float) -> bool:
    """Start (or continue) the endpoint's failing streak; True once it has lasted the window."""
    since = session.execute(
        text(
            "UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now())"
            " WHERE id = :id RETURNING failing_since"
        ),
        {"id": endpoint_id},
    ).scalar_one_or_none()
    return since is not None and now - since >= schedule.window(scale)


def prune(session: Session, older_than: timedelta) -> int:
    """Drop finished deliveries older than `older_than` (the delivery log's retention)."""
    return session.execute(
        text(
            "DELETE FROM webhook_deliveries WHERE status <> 'pending'"
            " AND created_at < now() - make_interval(secs => :age)"
        ),
        {"age": older_than.total_seconds()},
    ).rowcount
