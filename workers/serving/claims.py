"""Claim jobs for a run: mark them running and read their inputs, in one prepared statement
(shared/jobs/statements.py: CLAIM) committed by itself on the worker's kept connection."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.db import kept_copy_out, kept_execute
from shared.jobs import copy as job_copy
from shared.jobs import inputs, statements
from workers.serving.inference import ClaimedJob

if TYPE_CHECKING:
    import pandas as pd


def claim_jobs(model_id: uuid.UUID, job_ids: list[uuid.UUID], worker: str) -> list[ClaimedJob]:
    """Mark the jobs running and take a fencing token (the attempt number) for each: one
    prepared statement, committed by itself, on the worker's kept connection (db.kept_execute).
    Safe to run twice: a second claim supersedes the first (attempts + 1).

    Jobs already finished or cancelled are skipped; a job left `running` by a dead worker is
    taken over, and the dead run's late write (if any) then fails its fence.
    """
    params = ([str(job_id) for job_id in job_ids], str(model_id), worker)
    execute = f"EXECUTE {statements.CLAIM_NAME} (%s::uuid[], %s, %s)"
    rows = kept_execute(statements.CLAIM_NAME, statements.CLAIM, execute, params)
    _read_big_matrices(rows)
    return [_claimed(r) for r in rows]


def _read_big_matrices(rows: list[dict[str, Any]]) -> None:
    """Fill in the matrices the claim left out for their size, read by one binary COPY."""
    big = [row for row in rows if row["input_matrix"] is None and row["matrix_bytes"]]
    if not big:
        return
    data = kept_copy_out(job_copy.matrices_statement(row["id"] for row in big))
    found = job_copy.matrices(data)
    for row in big:
        row["input_matrix"] = found[uuid.UUID(str(row["id"]))]


def _claimed(row: dict[str, Any]) -> ClaimedJob:
    matrix = _matrix(row["input_matrix"], row["inputs"])
    return ClaimedJob(
        uuid.UUID(str(row["id"])),
        row["attempts"],
        matrix,
        row["return_probabilities"],
        row["return_scores"],
    )


def _matrix(matrix: bytes | memoryview | None, rows: Any) -> np.ndarray | pd.DataFrame:
    if matrix is not None:
        return inputs.decode(matrix)
    return np.asarray(rows, dtype=np.float64)  # a job queued before input_matrix existed
