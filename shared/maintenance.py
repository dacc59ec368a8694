"""Housekeeping run by celery beat (and the `flask purge-artifacts` command): expire stale queued
jobs, prune old inputs/results and old batches, delete artifacts of models deleted past the
grace period, find models whose validation never ended."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, exists, select, text, update
from sqlalchemy.orm import Session

from shared import failures
from shared.batches import FINAL_BATCH_STATUSES, Batch, BatchChunk, files
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


def batch_work_files(session: Session, batch_id: uuid.UUID) -> list[str]:
    """A batch's rows file and the part of every attempt of each chunk. Not only the parts its
    chunk rows name: a run killed between saving its part and recording it, or fenced out by a
    later run, leaves a part under its own attempt number that no row names."""
    sid = str(batch_id)
    chunks = session.execute(
        select(BatchChunk.index, BatchChunk.attempts).where(BatchChunk.batch_id == batch_id)
    )
    parts = [files.part_key(sid, i, a) for i, n in chunks for a in range(1, n + 1)]
    return [files.rows_key(sid), *parts]


def prune_batches(session: Session, store: ArtifactStore, retention_days: int, grace_s: int) -> int:
    """Batches finished more than JOB_RETENTION_DAYS ago go, rows and every file (input, rows,
    parts, result); batches cancelled or failed more than ARTIFACT_GRACE_S ago lose their rows
    file and parts (a succeeded or partial one removed its own when it finished; the input
    stays until retention). Returns the files removed; at most PRUNE_BATCH batches a pass."""
    now = datetime.now(UTC)
    old = session.execute(
        select(Batch.id, Batch.input_key, Batch.output_key)
        .where(
            Batch.status.in_(FINAL_BATCH_STATUSES),
            Batch.finished_at < now - timedelta(days=retention_days),
        )
        .limit(PRUNE_BATCH)
    ).all()
    removed = 0
    for row in old:
        keys = [row.input_key, row.output_key, *batch_work_files(session, row.id)]
        removed += _delete_files(store, keys)
    if old:  # the files first: a pass cut short leaves rows that lead the next one to them
        session.execute(delete(Batch).where(Batch.id.in_([row.id for row in old])))
    return removed + _prune_stopped_batches(session, store, now - timedelta(seconds=grace_s))


def _prune_stopped_batches(session: Session, store: ArtifactStore, cutoff: datetime) -> int:
    """The work files of cancelled and failed batches. Their chunk rows go with them (nothing
    reads a stopped batch's chunks), so a batch is visited once; one never planned (no chunk
    rows, though a cancel during planning may have left its rows file) costs one unlink a pass
    until retention removes it."""
    stopped = list(
        session.scalars(
            select(Batch.id)
            .where(
                Batch.status.in_(("cancelled", "failed")),
                Batch.finished_at < cutoff,
                exists().where(BatchChunk.batch_id == Batch.id) | Batch.chunks_total.is_(None),
            )
            .limit(PRUNE_BATCH)
        )
    )
    removed = sum(_delete_files(store, batch_work_files(session, b)) for b in stopped)
    if stopped:
        session.execute(delete(BatchChunk).where(BatchChunk.batch_id.in_(stopped)))
    return removed


def _delete_files(store: ArtifactStore, keys: Iterable[str | None]) -> int:
    removed = 0
    for key in filter(None, keys):
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
