"""When a failed delivery is tried again: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, then every 2 h,
each with up to 20 % of random jitter (so that an endpoint back from an outage is not hit by
every retry at once), for 24 h after the event. WEBHOOK_RETRY_SCALE multiplies all of it."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

DELAYS_S = (5, 30, 120, 600, 1800, 3600)
EVERY_S = 7200
WINDOW_S = 24 * 3600
JITTER = 0.2


def retry_delay(attempts: int, scale: float = 1.0) -> timedelta:
    """The wait after the `attempts`-th failed attempt (1 for the first)."""
    base = DELAYS_S[attempts - 1] if attempts <= len(DELAYS_S) else EVERY_S
    return timedelta(seconds=base * scale * (1 + random.uniform(0, JITTER)))  # noqa: S311


def window(scale: float = 1.0) -> timedelta:
    """How long an event (and an endpoint's failing streak) is retried."""
    return timedelta(seconds=WINDOW_S * scale)


def next_attempt(
    created_at: datetime, now: datetime, attempts: int, scale: float = 1.0
) -> datetime | None:
    """When to try again after a failure, or None when the retry window has passed."""
    at = now + retry_delay(attempts, scale)
    return at if at <= created_at + window(scale) else None
