"""The API's batch object, from a `batches` row."""

from __future__ import annotations

from shared.batches.table import Batch
from shared.schemas.batches import BatchInput, BatchOut


def batch_out(batch: Batch) -> BatchOut:
    return BatchOut(
        id=batch.id,
        model_id=batch.model_id,
        model_version=batch.model_version,
        status=batch.status,  # type: ignore[arg-type]
        rows_total=batch.rows_total,
        rows_done=batch.rows_done,
        rows_failed=batch.rows_failed,
        input=BatchInput(
            format=batch.input_format,  # type: ignore[arg-type]
            size_bytes=batch.input_size_bytes,
            filename=batch.input_filename,
        ),
        output_format=batch.output_format,  # type: ignore[arg-type]
        keep_columns=list(batch.keep_columns or []),
        return_probabilities=batch.return_probabilities,
        created_at=batch.created_at,
        started_at=batch.started_at,
        finished_at=batch.finished_at,
        error=batch.error,
    )
