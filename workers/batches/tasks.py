"""Celery tasks of batches, on their own queue (Settings.batch_queue) served by the `batch`
worker: thin wrappers that decode ids, call the plain functions and send the next tasks."""

from __future__ import annotations

import logging
import socket
import uuid
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError

from shared.celery_config import BATCH_CHUNK, FINISH_BATCH, PLAN_BATCH
from shared.config import get_settings
from workers.batches import chunks, plan, results
from workers.celery_app import app

log = logging.getLogger(__name__)
_settings = get_settings()
_HOST = socket.gethostname()
RETRIES = 30  # with backoff capped at 30 s: rides out a ~15 minute outage
# Rewriting a large input takes longer than a chunk: planning gets its own limits.
PLAN_SOFT_LIMIT_S = max(_settings.task_soft_time_limit_s, 300)

_COMMON: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
}


def send_chunks(batch_id: str, indices: list[int]) -> None:
    for index in indices:
        batch_chunk.apply_async(args=[batch_id, index], queue=_settings.batch_queue)


def send_result(batch_id: str) -> None:
    finish_batch.apply_async(args=[batch_id], queue=_settings.batch_queue)


def send_plan(batch_id: str) -> None:
    plan_batch.apply_async(args=[batch_id], queue=_settings.batch_queue)


@app.task(
    name=PLAN_BATCH,
    soft_time_limit=PLAN_SOFT_LIMIT_S,
    time_limit=PLAN_SOFT_LIMIT_S + 30,
    **_COMMON,
)
def plan_batch(self, batch_id: str) -> dict:
    """Rewrite the input into chunks and send one task per chunk."""
    indices = _retrying(self, lambda: plan.plan_batch(uuid.UUID(batch_id)))
    send_chunks(batch_id, indices)
    return {"batch_id": batch_id, "chunks": len(indices)}


@app.task(name=BATCH_CHUNK, **_COMMON)
def batch_chunk(self, batch_id: str, index: int) -> dict:
    """Predict one chunk; the last one sends the result's task."""
    worker = f"{self.request.hostname or _HOST}"
    last = _retrying(self, lambda: chunks.run_chunk(uuid.UUID(batch_id), index, worker))
    if last:
        send_result(batch_id)
    return {"batch_id": batch_id, "chunk": index, "last": last}


@app.task(name=FINISH_BATCH, **_COMMON)
def finish_batch(self, batch_id: str) -> dict:
    status = _retrying(self, lambda: results.finish_batch(uuid.UUID(batch_id)))
    return {"batch_id": batch_id, "status": status}


def _retrying(task: Any, work: Any) -> Any:
    """Run `work`; while the database or Redis is down, retry with backoff (the task's effects
    are conditional writes: running it again is safe)."""
    try:
        return work()
    except (OperationalError, RedisError) as exc:
        countdown = min(2**task.request.retries, 30)
        log.warning(
            "%s: dependency down (%s); retry in %ss", task.name, type(exc).__name__, countdown
        )
        raise task.retry(exc=exc, countdown=countdown, max_retries=RETRIES) from exc
