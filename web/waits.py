"""Caps on requests that wait, per web process: each holds a request thread while it waits.

Long-polls (`GET /jobs/{id}?wait=`), sync predictions, OIP infers and an upload's wait for its
validation take a slot first: at most MAX_WAITS_PER_USER per user and `Settings.wait_slots`
in all (MAX_WAITS, else WEB_THREADS - 4), so threads stay free for every other request. Past a
cap nothing waits: a long-poll or an infer answers 429 + Retry-After, a sync predict answers
202 with its (queued) job, an upload 202 `validating`. Issue 18: 40 long-polls of one free
account held all 32 threads for a minute, and `/health/live` took 58 s.

In memory, not in Redis: the threads being protected are this process's, and a slot costs no
round trip and cannot leak past the process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app

from shared.config import Settings
from shared.errors import TooManyRequests
from web.auth.guard import current

RETRY_AFTER_S = 1


class WaitSlots:
    """Counts of waits held, in all and per user; never blocks."""

    def __init__(self, total: int, per_user: int) -> None:
        self.total, self.per_user = total, per_user
        self._lock = threading.Lock()
        self._held = 0
        self._by_user: dict[str, int] = {}

    def try_acquire(self, user: str) -> bool:
        with self._lock:
            mine = self._by_user.get(user, 0)
            if self._held >= self.total or mine >= self.per_user:
                return False
            self._held += 1
            self._by_user[user] = mine + 1
            return True

    def release(self, user: str) -> None:
        with self._lock:
            self._held -= 1
            left = self._by_user.pop(user) - 1
            if left:
                self._by_user[user] = left


@contextmanager
def slot() -> Iterator[bool]:
    """Hold a wait slot of the current user for the block; yields False (holding nothing) when
    the user or the process is at its cap."""
    slots: WaitSlots = current_app.extensions["mlsp_wait_slots"]
    user = str(current().id)
    held = slots.try_acquire(user)
    try:
        yield held
    finally:
        if held:
            slots.release(user)


def too_many() -> TooManyRequests:
    return TooManyRequests(
        "Too many requests waiting at once (per user or on this server); retry shortly",
        code="too_many_waits",
        retry_after=RETRY_AFTER_S,
    )


def register_waits(app: Flask, settings: Settings) -> None:
    app.extensions["mlsp_wait_slots"] = WaitSlots(settings.wait_slots, settings.max_waits_per_user)
