"""A batch's result: once every chunk is done, its parts are joined in order into one file, the
batch finishes (`partial` when some rows failed), and the rows file and parts are removed."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import func, select, update

from shared.batches import Batch, BatchChunk, files
from shared.db import session_scope
from shared.maintenance import batch_work_files
from shared.signals import signal_done
from shared.store import get_store

log = logging.getLogger(__name__)


def finish_batch(batch_id: uuid.UUID) -> str | None:
    """Write the result and finish the batch; its new status, or None when it is not (or no
    longer) complete. Safe to run twice: the second finds it finished."""
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        if batch is None or batch.status != "running" or batch.chunks_done != batch.chunks_total:
            return None
        parts = list(
            session.scalars(
                select(BatchChunk.part_key)
                .where(BatchChunk.batch_id == batch_id)
                .order_by(BatchChunk.index)
            )
        )
        fmt, failed = batch.output_format, batch.rows_failed
        # Every attempt's part, not only those joined: a run killed after saving its part and
        # before recording it left one under its own attempt number.
        work = batch_work_files(session, batch_id)
    store = get_store()
    key = files.result_key(str(batch_id), fmt)
    files.write_result([store.local_path(p) for p in parts], fmt, store, key)
    status = "partial" if failed else "succeeded"
    with session_scope() as session:
        finished = session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.status == "running")
            .values(status=status, output_key=key, finished_at=func.now())
        ).rowcount
    if not finished:
        # Cancelled meanwhile, or another run of this task finished it first (the reaper re-sends
        # the result of a batch that ran past its period while the last chunk sends it too): the
        # file is then that run's (same key, same content) and must stay.
        with session_scope() as session:
            if session.scalar(select(Batch.output_key).where(Batch.id == batch_id)) != key:
                store.delete(key)
        return None
    for leftover in work:
        store.delete(leftover)
    signal_done("batch", [str(batch_id)])
    log.info("batch %s %s", batch_id, status)
    return status
