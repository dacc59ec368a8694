"""Housekeeping run by celery beat (and the `flask purge-artifacts` command): expire stale queued
jobs, prune old inputs/results, delete artifacts of models deleted past the grace period, find
models whose validation never ended."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from shared import failures
from shared.jobs import Job
from shared.models import MLModel
from shared.store import ArtifactStore

log = logging.getLogger(__name__)
PRUNE_BATCH = 10_000


def expire_queued_jobs(session: Session, ttl_s: int) -> list:
    """Jobs nobody started within JOB_TTL_S end `expired` (a final state, never silence)."""
    cutoff = datetime.now(UTC) - timedelta(seconds=ttl_s)
    return list(
        session.scalars(
            update(Job)
            .where(Job.status == "queued", Job.created_at < cutoff)
            .values(
                status="expired",
                finished_at=datetime.now(UTC),
                error_code=failures.EXPIRED,
                error_message=f"not started within {ttl_s} s",
            )
            .returning(Job.id)
        )
    )


def find_stuck_models(session: Session, after_s: float) -> list:
    """Models still `validating` MODEL_STUCK_AFTER_S after their last change: their validation
    task was lost (Redis restarted empty) or its worker was killed on every delivery."""
    cutoff = datetime.now(UTC) - timedelta(seconds=after_s)
    return list(
        session.scalars(
            select(MLModel.id).where(MLModel.status == "validating", MLModel.updated_at < cutoff)
        )
    )


def prune_history(session: Session, retention_days: int) -> int:
    """Drop inputs and results of jobs finished more than JOB_RETENTION_DAYS ago; the rows (and
    their timings, for analytics) stay."""
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    batch = (
        select(Job.id)
        .where(
            Job.finished_at < cutoff,
            Job.inputs.is_not(None) | Job.input_matrix.is_not(None) | Job.result.is_not(None),
        )
        .limit(PRUNE_BATCH)
        .scalar_subquery()
    )
    result = session.execute(
        update(Job).where(Job.id.in_(batch)).values(inputs=None, input_matrix=None, result=None)
    )
    return result.rowcount or 0


def purge_deleted_artifacts(session: Session, store: ArtifactStore, grace_s: int) -> int:
    """Remove the files of models soft-deleted more than ARTIFACT_GRACE_S ago."""
    cutoff = datetime.now(UTC) - timedelta(seconds=grace_s)
    rows = session.execute(
        select(MLModel.artifact_key, MLModel.onnx_key).where(
            MLModel.deleted_at.is_not(None), MLModel.deleted_at < cutoff
        )
    )
    removed = 0
    for key in (k for row in rows for k in row if k):  # the upload and its compiled ONNX file
        if store.exists(key):
            store.delete(key)
            removed += 1
    return removed


_STUCK = text(
    """
    UPDATE jobs SET enqueued_at = now()
    WHERE id IN (
        SELECT id FROM jobs
        WHERE COALESCE(enqueued_at, created_at) < now() - make_interval(secs => :stuck)
          AND (status = 'queued'
               OR (status = 'running' AND started_at < now() - make_interval(secs => :running)))
        ORDER BY created_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED)
    RETURNING id, model_id
    """
)


def find_stuck_jobs(
    session: Session, stuck_after_s: float, running_deadline_s: float, limit: int = 5000
) -> dict[str, list[str]]:
    """Jobs whose queue entry may be lost (queued past JOB_STUCK_AFTER_S since last enqueued) or
    whose worker died (running past the hard time limit), grouped by model; their enqueue time
    is reset so the next pass leaves them alone for another JOB_STUCK_AFTER_S."""
    rows = session.execute(
        _STUCK, {"stuck": stuck_after_s, "running": running_deadline_s, "limit": limit}
    )
    by_model: dict[str, list[str]] = {}
    for job_id, model_id in rows:
        by_model.setdefault(str(model_id), []).append(str(job_id))
    return by_model
