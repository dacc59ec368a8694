"""Batches: bulk file predictions, the one owner of the `batches` and `batch_chunks` rows.

`table` declares them, `files` reads and writes the input, rows and result files, `cells` turns
a chunk's cells into model input (a bad cell fails its row), `render` makes the API's batch
object.
"""

from shared.batches.table import (
    ACTIVE_BATCH_STATUSES,
    BATCH_STATUSES,
    FINAL_BATCH_STATUSES,
    Batch,
    BatchChunk,
)

__all__ = [
    "ACTIVE_BATCH_STATUSES",
    "BATCH_STATUSES",
    "FINAL_BATCH_STATUSES",
    "Batch",
    "BatchChunk",
]
