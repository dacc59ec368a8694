"""What happens to queue entries a drain could not finish: a lease whose task died, and entries
no drain can process. Nothing is retried at the head of a model's list forever.

- A batch killed at the hard time limit (the worker's main process records it: `mark_time_kill`)
  or whose worker process died: its entries go back as suspects and run alone (shared/queueing.py
  _RECOVER). An entry that dies again alone, or the only entry of a batch killed for time, is set
  aside: its job fails (`timeout`, `worker_lost`) instead of being retried into every worker.
- An entry that cannot be parsed (`set_aside` from workers/serving/pipeline.py), or a batch that
  raised something other than an outage, likewise: never put back where the next drain meets it
  again.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import orjson
from celery.exceptions import TimeLimitExceeded
from sqlalchemy import text

from shared import failures, inline_jobs, queueing
from shared.celery_config import DRAIN_MODEL
from shared.config import get_settings
from shared.db import session_scope
from shared.jobs.render import job_json
from shared.redis_client import get_redis
from shared.signals import done_commands, reply_commands, send_commands
from workers import metrics
from workers.serving import inference, inline, results

log = logging.getLogger(__name__)

_FAIL = text(
    """
    UPDATE jobs SET status = 'failed', error_code = :code, error_message = :message,
        finished_at = clock_timestamp(),
        total_ms = EXTRACT(EPOCH FROM (clock_timestamp() - created_at)) * 1000
    WHERE id = ANY(CAST(:ids AS uuid[])) AND model_id = :model
      AND status IN ('queued', 'running')
    RETURNING id
    """
)
# Requeued jobs wait again: `running` stays the state of a job a live worker holds, and the
# reaper's stuck-job scan does not push them a second time.
_REQUEUE = text(
    """
    UPDATE jobs SET status = 'queued', enqueued_at = now()
    WHERE id = ANY(CAST(:ids AS uuid[])) AND model_id = :model AND status = 'running'
    """
)


def _why(cause: str) -> tuple[str, str]:
    """Error code and message of a job set aside for this cause ("+": the batch held other
    models' entries too)."""
    cause = cause.removesuffix("+")
    limit = get_settings().task_time_limit_s
    killed = f"inference exceeded the hard time limit ({limit}s): worker killed"
    died = "the worker process died running this job (in its batch, then alone)"
    return {
        "time": (failures.TIMEOUT, killed),
        "lost": (failures.WORKER_LOST, died),
        "out_of_memory": (failures.OUT_OF_MEMORY, "the worker ran out of memory running this job"),
    }.get(cause, (failures.INTERNAL_ERROR, "this job could not be processed"))


def recover(client: Any, key: str, route: queueing.Route) -> queueing.Recovered:
    """Put back a dead task's lease: set aside what may have killed it (recorded as failed),
    requeue the rest as suspects, and summon a drainer for them."""
    got = queueing.recover_lease(client, route, key)
    if got.set_aside:
        code, message = _why(got.cause)
        set_aside(got.model_id, got.set_aside, code, message)
    if got.requeued:
        log.warning(
            "recovered lease of model %s (cause %s): %d entries requeued to run alone",
            got.model_id,
            got.cause,
            len(got.requeued),
        )
        _requeue_rows(got.model_id, got.requeued)
        queueing.reschedule(client, route, got.model_id)
    return got


def _requeue_rows(model_id: str, entries: list[str]) -> None:
    ids = [inline_jobs.entry_id(e) for e in entries if not inline_jobs.is_inline(e)]
    ids = [job_id for job_id in ids if _uuid(job_id)]
    if ids:
        with session_scope() as session:
            session.execute(_REQUEUE, {"ids": ids, "model": model_id})


def set_aside(
    model_id: str, entries: list[str], code: str, message: str, signals: list | None = None
) -> list[str]:
    """Record entries as failed and drop them: a job id's row fails if still unfinished; an
    inline job gets its failed row and its waiter a reply; of an entry that cannot be parsed
    only the id (if any) is recorded. Returns the ids recorded as failed."""
    ids, inline_rows = [], []
    for entry in entries:
        job = _inline(entry, model_id)
        if job is not None:
            inline_rows.append(job)
        elif (job_id := _id_of(entry)) is not None:
            ids.append(job_id)
    failed = _fail_rows(model_id, ids, code, message)
    commands = done_commands("job", failed)
    commands += _fail_inline(inline_rows, code, message)
    if signals is None:
        send_commands(get_redis(), commands)
    else:
        signals += commands
    recorded = [str(i) for i in failed]
    log.warning(
        "set aside %d entries of model %s (%s: %s); recorded failed: %s",
        len(entries),
        model_id,
        code,
        message,
        recorded or "none",
    )
    metrics.jobs_finished("failed", len(recorded) + len(inline_rows))
    return recorded + [j.id for j in inline_rows]


def _fail_rows(model_id: str, ids: list[str], code: str, message: str) -> list[uuid.UUID]:
    if not ids:
        return []
    params = {"ids": ids, "model": model_id, "code": code, "message": message}
    with session_scope() as session:
        return list(session.scalars(_FAIL, params))


def _fail_inline(jobs: list[inline_jobs.InlineJob], code: str, message: str) -> list[tuple]:
    """Failed rows for inline jobs (inserted, or over their `queued` row) and replies."""
    if not jobs:
        return []
    claimed = {uuid.UUID(j.id): inline.claimed(j) for j in jobs}
    outcomes = [inference.failed(c, code, message) for c in claimed.values()]
    meta = {uuid.UUID(j.id): j for j in jobs}
    rows = inline.records(claimed, meta, outcomes, time.time(), "recovery")
    _, replied = results.write([], rows)
    return reply_commands("job", {str(r["id"]): job_json(r) for r in replied})


def _inline(entry: str, model_id: str) -> inline_jobs.InlineJob | None:
    """The inline job of an entry, if it is one that is whole and for this model."""
    if not inline_jobs.is_inline(entry):
        return None
    try:
        job = inline_jobs.parse(entry)
        inline.claimed(job)
    except (ValueError, TypeError):
        return None
    return job if job.model_id == model_id else None


def _id_of(entry: str) -> str | None:
    """A job id in an entry, even a broken one (its row, if any, is what records the failure)."""
    if not inline_jobs.is_inline(entry):
        job_id = inline_jobs.entry_id(entry)
        return job_id if _uuid(job_id) else None
    try:
        fields = orjson.loads(entry)
    except orjson.JSONDecodeError:
        return None
    job_id = fields.get("id") if isinstance(fields, dict) else None
    return job_id if isinstance(job_id, str) and _uuid(job_id) else None


def _uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def mark_time_kill(
    sender: Any = None,
    task_id: str | None = None,
    exception: Any = None,
    **_: Any,
) -> None:
    """task_failure handler, in the worker's main process: a drain task killed at the hard time
    limit leaves its lease marked, so the entries of its batch are not simply retried, and its
    place among the drainers free (the task is not redelivered)."""
    if getattr(sender, "name", None) != DRAIN_MODEL or not isinstance(exception, TimeLimitExceeded):
        return
    try:
        client = get_redis()
        leases = queueing.leases_of(client, str(task_id))
        for key in leases:
            queueing.mark_dead(client, key, "time+" if len(leases) > 1 else "time")
        queueing.forget_drainer(client, get_settings().default_queue, str(task_id))
    except Exception:  # the reaper still recovers the lease (as "lost") after its deadline
        log.exception("could not record the time kill of drain task %s", task_id)
