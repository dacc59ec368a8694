"""The web tier's side of the per-model job queues (shared/queueing.py): capacity checks, pushes
of job ids and inline jobs, and the enqueue after a job's row is committed."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from flask import g

from shared import queueing
from shared.config import Settings
from shared.errors import TooManyRequests
from shared.inline_jobs import waited_entry
from shared.models import MLModel
from shared.quotas import QuotaSpent
from web import epoch, extensions, limits
from web.registry.cache import ServingModel

log = logging.getLogger(__name__)
RETRY_AFTER_FULL_S = 2


def check_capacity(model: ServingModel | MLModel) -> None:
    """Overload is answered, not absorbed: past MAX_QUEUE_DEPTH waiting jobs, past the caller's
    MAX_QUEUED_PER_USER across models, or past their prediction quota, 429. One round trip,
    before the job row is written, which also checks an assumed cache epoch and counts the
    quota (queueing.admit)."""
    quota = limits.predict_quota()
    config = extensions.settings()
    with _refusals():
        _, current_epoch = queueing.admit(
            extensions.redis(),
            _route(config),
            str(model.id),
            owner=_owner(),
            max_depth=config.max_queue_depth,
            max_backlog=config.max_queued_per_user,
            expect_epoch=epoch.expected(),
            quota=quota,
        )
    limits.counted(quota)
    epoch.check(current_epoch)


@contextmanager
def _refusals() -> Iterator[None]:
    """The push scripts' refusals as 429s. Each was decided after the script checked the
    request's assumed cache epoch, which therefore stands confirmed."""
    try:
        yield
    except queueing.QueueFull as full:
        epoch.confirm()
        raise queue_full(full.depth) from None
    except queueing.BacklogFull as full:
        epoch.confirm()
        raise backlog_full(full.queued) from None
    except QuotaSpent as spent:
        epoch.confirm()
        raise limits.quota_spent(spent) from None


def queue_full(depth: int) -> TooManyRequests:
    limit = extensions.settings().max_queue_depth
    return TooManyRequests(
        f"Model queue is full ({depth} jobs waiting); retry later",
        code="queue_full",
        retry_after=RETRY_AFTER_FULL_S,
        details={"queue_depth": depth, "max_queue_depth": limit},
    )


def backlog_full(queued: int) -> TooManyRequests:
    limit = extensions.settings().max_queued_per_user
    return TooManyRequests(
        f"You have {queued} jobs waiting across your models; retry later",
        code="backlog_full",
        retry_after=RETRY_AFTER_FULL_S,
        details={"queued": queued, "max_queued_per_user": limit},
    )


def _route(config: Settings) -> queueing.Route:
    headers = {"request_id": g.get("request_id")}
    return queueing.Route.from_settings(extensions.producer(), config, headers)


def _owner() -> str:
    """Whose turn of the ready ring the job waits for: the caller's."""
    user = g.get("user")
    return str(user.id) if user is not None else ""


def push(model_id: uuid.UUID, entries: list[str]) -> None:
    route = _route(extensions.settings())
    queueing.push_jobs(extensions.redis(), route, str(model_id), entries, owner=_owner())


def push_and_wait(model_id: uuid.UUID, entry: str, reply_key: str, seconds: float) -> bytes | None:
    """Queue one entry, checked against capacity and the request's assumed cache epoch, and
    wait for its reply (queueing.push_and_wait: one round trip, which also counts the caller's
    prediction quota); 429 when the queue is full or the quota spent."""
    config = extensions.settings()
    quota = limits.predict_quota()
    with _refusals():
        reply = queueing.push_and_wait(
            extensions.redis(blocking=True),
            _route(config),
            str(model_id),
            entry,
            reply_key,
            seconds,
            owner=_owner(),
            max_depth=config.max_queue_depth,
            max_backlog=config.max_queued_per_user,
            expect_epoch=epoch.expected(),
            quota=quota,
        )
    epoch.confirm()
    limits.counted(quota)
    return reply


def enqueue(job_id: uuid.UUID, model_id: uuid.UUID, *, reply: bool = False) -> bool:
    """Queue the job id after the row is committed (`reply`: marked for a worker's reply with
    the finished job, the caller waits for it). If Redis is down the job stays `queued` in
    PostgreSQL (durable) and the reaper queues it again; the client still gets its 202."""
    try:
        push(model_id, [waited_entry(job_id) if reply else str(job_id)])
        return True
    except Exception:
        log.warning("enqueue failed for job %s; left queued for the reaper", job_id, exc_info=True)
        return False
