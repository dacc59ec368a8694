"""Housekeeping run by celery beat (and the `flask purge-artifacts` command): expire stale queued
jobs, prune old inputs/results, delete artifacts of models deleted past the grace period."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.models import Job, MLModel
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
                error_code="expired",
                error_message=f"not started within {ttl_s} s",
            )
            .returning(Job.id)
        )
    )


def prune_history(session: Session, retention_days: int) -> int:
    """Drop inputs and results of jobs finished more than JOB_RETENTION_DAYS ago; the rows (and
    their timings, for analytics) stay."""
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    batch = (
        select(Job.id)
        .where(Job.finished_at < cutoff, (Job.inputs.is_not(None)) | (Job.result.is_not(None)))
        .limit(PRUNE_BATCH)
        .scalar_subquery()
    )
    result = session.execute(update(Job).where(Job.id.in_(batch)).values(inputs=None, result=None))
    return result.rowcount or 0


def purge_deleted_artifacts(session: Session, store: ArtifactStore, grace_s: int) -> int:
    """Remove the files of models soft-deleted more than ARTIFACT_GRACE_S ago."""
    cutoff = datetime.now(UTC) - timedelta(seconds=grace_s)
    keys = session.scalars(
        select(MLModel.artifact_key).where(
            MLModel.deleted_at.is_not(None), MLModel.deleted_at < cutoff
        )
    )
    removed = 0
    for key in keys:
        if store.exists(key):
            store.delete(key)
            removed += 1
    return removed
