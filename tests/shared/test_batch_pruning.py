"""Retention of batches (shared/maintenance.prune_batches): old finished batches go with every
file; stopped ones lose their work files after the grace period; nothing else is touched."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from shared import maintenance
from shared.batches import Batch, BatchChunk, files
from shared.db import session_scope
from shared.store import get_store
from tests.fixtures.models import fit_classifier, insert_ready_model

GRACE_S = 3600
NOW = datetime.now(UTC)


def _save(key: str) -> str:
    get_store().save(key, io.BytesIO(b"x"))
    return key


def _batch(owner: str, model_id: str, status: str, finished_ago: timedelta | None, **values):
    """A batch row and its input file; `finished_ago` None for one still active."""
    batch_id = uuid.uuid4()
    with session_scope() as s:
        s.add(
            Batch(
                id=batch_id,
                owner_id=uuid.UUID(owner),
                model_id=uuid.UUID(model_id),
                model_version=1,
                status=status,
                input_key=_save(files.input_key(str(batch_id), "csv")),
                input_format="csv",
                input_size_bytes=1,
                input_sha256="0" * 64,
                output_format="csv",
                finished_at=None if finished_ago is None else NOW - finished_ago,
                **values,
            )
        )
    return batch_id


def _chunks(batch_id: uuid.UUID, attempts: list[int]) -> list[str]:
    """Chunk rows with `attempts` each, and a part file for every attempt (a killed run's too)."""
    keys = []
    with session_scope() as s:
        for index, n in enumerate(attempts):
            s.add(BatchChunk(batch_id=batch_id, index=index, row_start=index, row_count=1))
            s.flush()
            s.get(BatchChunk, (batch_id, index)).attempts = n
            keys += [_save(files.part_key(str(batch_id), index, a)) for a in range(1, n + 1)]
    return keys


def _exists(keys: list[str]) -> list[bool]:
    return [get_store().exists(k) for k in keys]


def _prune() -> int:
    with session_scope() as s:
        return maintenance.prune_batches(s, get_store(), retention_days=30, grace_s=GRACE_S)


def test_prune_batches(user, tmp_path):
    model_id = insert_ready_model(user, fit_classifier(), tmp_path)
    # Finished 40 days ago: a chunk re-run after a kill left its first attempt's part behind.
    old = _batch(user.id, model_id, "succeeded", timedelta(days=40), chunks_total=2)
    old_files = [
        files.input_key(str(old), "csv"),
        _save(files.result_key(str(old), "csv")),
        _save(files.rows_key(str(old))),
        *_chunks(old, [1, 2]),
    ]
    with session_scope() as s:
        s.get(Batch, old).output_key = files.result_key(str(old), "csv")
    recent = _batch(user.id, model_id, "partial", timedelta(days=2), chunks_total=1)
    recent_files = [
        files.input_key(str(recent), "csv"),
        _save(files.result_key(str(recent), "csv")),
    ]
    # Cancelled past the grace period mid-run: one chunk done, one never claimed.
    cancelled = _batch(user.id, model_id, "cancelled", timedelta(hours=2), chunks_total=2)
    cancelled_work = [_save(files.rows_key(str(cancelled))), *_chunks(cancelled, [1, 0])]
    # Failed while planning (no chunks) with a rows file; cancelled within the grace period.
    unplanned = _batch(user.id, model_id, "failed", timedelta(hours=2))
    unplanned_rows = [_save(files.rows_key(str(unplanned)))]
    fresh = _batch(user.id, model_id, "cancelled", timedelta(minutes=5), chunks_total=1)
    fresh_work = [_save(files.rows_key(str(fresh))), *_chunks(fresh, [1])]
    running = _batch(user.id, model_id, "running", None, chunks_total=1)
    running_work = [_save(files.rows_key(str(running))), *_chunks(running, [1])]

    assert _prune() == len(old_files) + len(cancelled_work) + len(unplanned_rows) == 9
    assert _exists(old_files) == [False] * 6
    assert _exists(cancelled_work + unplanned_rows) == [False] * 3
    kept = (
        recent_files
        + [files.input_key(str(b), "csv") for b in (cancelled, unplanned)]
        + fresh_work
        + running_work
    )
    assert all(_exists(kept))
    with session_scope() as s:
        remaining = set(s.scalars(select(Batch.id)))
        chunked = dict(
            s.execute(select(BatchChunk.batch_id, func.count()).group_by(BatchChunk.batch_id)).all()
        )
    assert remaining == {recent, cancelled, unplanned, fresh, running}
    assert chunked == {fresh: 1, running: 1}  # the stopped batch's chunk rows went with its files
    assert _prune() == 0  # nothing left to do: a second pass removes nothing
