"""Plan a batch: rewrite its input into the rows file (one row group per chunk) and record the
chunks. Runs once per batch; a redelivery finds the batch no longer `queued` and stops."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import func, insert, select, update

from shared.batches import Batch, BatchChunk, files
from shared.config import get_settings
from shared.db import session_scope
from shared.store import get_store

log = logging.getLogger(__name__)


def plan_batch(batch_id: uuid.UUID) -> list[int]:
    """The chunk indices to send (empty when there is nothing to do)."""
    settings = get_settings()
    with session_scope() as session:
        batch = session.scalar(
            select(Batch).where(Batch.id == batch_id, Batch.status == "queued").with_for_update()
        )
        if batch is None:
            return []
        batch.attempts += 1  # committed before the work: a file that kills its worker counts
        attempts, fmt, key = batch.attempts, batch.input_format, batch.input_key
    if attempts > settings.job_max_attempts:
        fail(batch_id, f"planning did not finish in {attempts - 1} attempts")
        return []
    store = get_store()
    try:
        counts = _write_rows(store, batch_id, fmt, key, settings.batch_chunk_rows)
    except files.BadFile as exc:
        fail(batch_id, f"the file cannot be read: {exc}")
        return []
    if not counts:
        fail(batch_id, "the file has no rows")
        return []
    return _record_chunks(batch_id, counts)


def _write_rows(store, batch_id: uuid.UUID, fmt: str, key: str, chunk_rows: int) -> list[int]:
    with files.scratch(store) as path:
        counts = files.write_rows_file(store.local_path(key), fmt, path, chunk_rows)
        if counts:
            with open(path, "rb") as stream:
                store.save(files.rows_key(str(batch_id)), stream)
    return counts


def _record_chunks(batch_id: uuid.UUID, counts: list[int]) -> list[int]:
    starts = [sum(counts[:i]) for i in range(len(counts))]
    with session_scope() as session:
        changed = session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.status == "queued")
            .values(
                status="running",
                rows_total=sum(counts),
                chunks_total=len(counts),
                started_at=func.now(),
                enqueued_at=func.now(),
            )
        ).rowcount
        if not changed:  # cancelled meanwhile
            return []
        session.execute(
            insert(BatchChunk),
            [
                {"batch_id": batch_id, "index": i, "row_start": start, "row_count": n}
                for i, (start, n) in enumerate(zip(starts, counts, strict=True))
            ],
        )
    log.info("batch %s planned: %d rows in %d chunks", batch_id, sum(counts), len(counts))
    return list(range(len(counts)))


def fail(batch_id: uuid.UUID, error: str) -> None:
    with session_scope() as session:
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.status.in_(("queued", "running")))
            .values(status="failed", error=error[:500], finished_at=func.now())
        )
