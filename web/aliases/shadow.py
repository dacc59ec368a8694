"""Shadow copies: a share of a bare name's predictions also runs on another version, whose
answer is stored (history, analytics) and never returned.

The copy is an inline queue entry (shared/inline_jobs.py) marked `shadow`: the worker predicts
it and inserts its finished row, linked to the caller's job by `shadow_of`; nobody waits for its
reply. It is handed to a small thread pool once the caller's job has its answer (or is queued),
so checking the rows against the shadow's schema and pushing the entry never delay the caller,
and a slow or failing shadow cannot change the caller's status. A copy is best effort: with the
pool busy, the shadow's queue full, Redis down, or more rows than a sync prediction carries in
its queue entry (SYNC_INLINE_MAX_ROWS) it is skipped (and logged), never retried.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import g

from shared import inline_jobs, queueing
from shared.errors import ApiError
from shared.inline_jobs import InlineJob
from shared.jobs import inputs
from shared.jobs.checks import normalise_rows
from shared.jobs.inputs import Rows
from shared.schemas.jobs import PredictRequest
from web import extensions
from web.auth.guard import current
from web.registry.cache import ServingModel

log = logging.getLogger(__name__)

# How long a shadow entry may wait for a worker: past it (plus the inline grace) it is dropped
# rather than computed for nobody's analytics an hour late.
SHADOW_DEADLINE_S = 60.0
MAX_PENDING = 256  # copies waiting for the pool; more are skipped
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlsp-shadow")
_pending = threading.BoundedSemaphore(MAX_PENDING)


def fire(
    shadow: ServingModel,
    primary: ServingModel,
    rows: Rows,
    body: PredictRequest,
    primary_job_id: uuid.UUID,
) -> bool:
    """Hand the copy of the caller's job to the pool; False when it was skipped."""
    if len(rows) > extensions.settings().sync_inline_max_rows:
        # A copy travels in the queue entry itself, as a sync prediction does: no bigger.
        log.info("shadow copy of job %s skipped: %d rows", primary_job_id, len(rows))
        return False
    if not _pending.acquire(blocking=False):
        log.warning("shadow copy of job %s skipped: %d copies pending", primary_job_id, MAX_PENDING)
        return False
    send = _sender(shadow, primary, rows, body, primary_job_id)
    try:
        _pool.submit(_run, send)
    except RuntimeError:  # the pool is shutting down with the process
        _pending.release()
        return False
    return True


def _run(send: Callable[[], None]) -> None:
    try:
        send()
    except Exception:
        log.warning("shadow copy failed", exc_info=True)
    finally:
        _pending.release()


def _sender(
    shadow: ServingModel,
    primary: ServingModel,
    rows: Rows,
    body: PredictRequest,
    primary_job_id: uuid.UUID,
) -> Callable[[], None]:
    """What the pool runs, bound to this request's values (it has no request or app context)."""
    settings = extensions.settings()
    client = extensions.redis()
    route = queueing.Route.from_settings(
        extensions.producer(), settings, {"request_id": g.get("request_id")}
    )
    fields = {
        "owner_id": str(current().id),
        "request_id": g.get("request_id"),
        "shadow_of": str(primary_job_id),
    }

    def send() -> None:
        shadow_rows = _rows_for(shadow, primary, rows, body.inputs, settings.max_rows_per_request)
        if shadow_rows is None:
            return
        entry = _entry(shadow, shadow_rows, body, fields)
        try:
            queueing.push_jobs(
                client,
                route,
                str(shadow.id),
                [entry],
                owner=fields["owner_id"],
                max_depth=settings.max_queue_depth,
                max_backlog=settings.max_queued_per_user,
            )
        except queueing.QueueFull as full:
            log.warning("shadow copy to %s skipped: queue full (%d)", shadow.id, full.depth)
        except queueing.BacklogFull as full:
            log.warning(
                "shadow copy to %s skipped: owner's backlog full (%d)", shadow.id, full.queued
            )

    return send


def _rows_for(
    shadow: ServingModel, primary: ServingModel, rows: Rows, raw: list[Any], limit: int
) -> Rows | None:
    """The caller's rows as the shadow reads them: the same when the schemas agree, else
    checked against the shadow's (None, logged, when it would refuse them)."""
    if shadow.input_schema == primary.input_schema:
        return rows
    try:
        return normalise_rows(raw, shadow.input_schema, limit)
    except ApiError as refused:
        log.warning("shadow copy to %s skipped: %s", shadow.id, refused.message)
        return None


def _entry(shadow: ServingModel, rows: Rows, body: PredictRequest, fields: dict[str, Any]) -> str:
    outputs = shadow.output_schema
    now = time.time()
    return InlineJob(
        id=inline_jobs.new_id(),
        model_id=str(shadow.id),
        model_version=shadow.version,
        inputs=inputs.to_text(rows),
        return_probabilities=body.return_probabilities and bool(outputs.get("has_proba")),
        created_at=now,
        deadline=now + SHADOW_DEADLINE_S,
        return_scores=body.return_scores and bool(outputs.get("has_scores")),
        route="shadow",
        **fields,
    ).encode()
