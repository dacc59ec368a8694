"""Run prediction jobs: claim, load through the cache, predict as one batch, write results.

Plain functions over a database session and a runtime, so they are tested without Celery. The
database is touched in two short transactions (claim, then write); none is held while the model
predicts.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from shared.config import get_settings
from shared.db import kept_execute
from shared.jobs import statements
from shared.jobs.rows import OUTCOME_RECORD
from shared.matrix import from_npy
from workers.runtimes.base import ModelRuntime

log = logging.getLogger(__name__)


@dataclass
class ClaimedJob:
    id: uuid.UUID
    attempts: int
    inputs: np.ndarray  # float64, one row per input row
    return_probabilities: bool


@dataclass
class Outcome:
    id: uuid.UUID
    attempts: int
    status: str
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    inference_ms: float | None = None
    cache_hit: bool | None = None
    runtime: str | None = None

    def as_record(self) -> dict[str, Any]:
        """The outcome as the result write takes it (shared/jobs/statements.py)."""
        return {name: getattr(self, name) for name in OUTCOME_RECORD}


@dataclass
class ModelRef:
    """What a worker needs to know about a model to load and run it."""

    id: uuid.UUID
    status: str
    deleted: bool
    sha256: str
    artifact_key: str
    format: str
    size_bytes: int
    input_schema: dict[str, Any] | None
    extra: dict[str, Any] = field(default_factory=dict)
    owner_id: uuid.UUID | None = None

    @property
    def servable(self) -> bool:
        return self.status == "ready" and not self.deleted


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
    return [_claimed(r) for r in rows]


def _claimed(row: dict[str, Any]) -> ClaimedJob:
    matrix = _matrix(row["input_matrix"], row["inputs"])
    return ClaimedJob(
        uuid.UUID(str(row["id"])), row["attempts"], matrix, row["return_probabilities"]
    )


def _matrix(matrix: bytes | memoryview | None, inputs: Any) -> np.ndarray:
    if matrix is not None:
        return from_npy(matrix)
    return np.asarray(inputs, dtype=np.float64)  # a job queued before input_matrix existed


def load_model_ref(session: Session | Connection, model_id: uuid.UUID) -> ModelRef | None:
    row = session.execute(
        text(
            "SELECT id, status, deleted_at IS NOT NULL AS deleted, sha256, artifact_key, format,"
            " size_bytes, input_schema, runtime, onnx_key, onnx_sha256, onnx_size_bytes,"
            " owner_id"
            " FROM models WHERE id = :id"
        ),
        {"id": model_id},
    ).first()
    if row is None:
        return None
    # `extra`: the runtime the next job uses, the compiled ONNX artifact (workers/runtime_select).
    extra = {k: row._mapping[k] for k in ("runtime", "onnx_key", "onnx_sha256", "onnx_size_bytes")}
    return ModelRef(*row[:8], extra=extra, owner_id=row.owner_id)


def failed(job: ClaimedJob, code: str, message: str, **extra: Any) -> Outcome:
    return Outcome(job.id, job.attempts, "failed", error_code=code, error_message=message, **extra)


def out_of_memory(job: ClaimedJob, **extra: Any) -> Outcome:
    """A job whose prediction (or model) did not fit in the worker child's memory cap."""
    limit = get_settings().worker_memory_limit_mb
    return failed(job, "out_of_memory", f"prediction needed more memory than the worker's limit"
                  f" (WORKER_MEMORY_LIMIT_MB={limit})", **extra)  # fmt: skip


def predict_batch(runtime: ModelRuntime, jobs: list[ClaimedJob], cache_hit: bool) -> list[Outcome]:
    """One predict call over all jobs' rows; if it fails, each job alone so that one bad job
    fails only itself."""
    try:
        return _predict_stacked(runtime, jobs, cache_hit)
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        if len(jobs) == 1:
            return [_predict_one(runtime, jobs[0], cache_hit)]
        log.info("batch of %d failed; retrying job by job", len(jobs))
        return [_predict_one(runtime, job, cache_hit) for job in jobs]


def _predict_one(runtime: ModelRuntime, job: ClaimedJob, cache_hit: bool) -> Outcome:
    try:
        return _predict_stacked(runtime, [job], cache_hit)[0]
    except SoftTimeLimitExceeded:
        raise
    except MemoryError:
        return out_of_memory(job, cache_hit=cache_hit, runtime=runtime.name)
    except Exception as exc:
        message = (
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        )
        return failed(
            job, "inference_error", message[:500], cache_hit=cache_hit, runtime=runtime.name
        )


def _predict_stacked(
    runtime: ModelRuntime, jobs: list[ClaimedJob], cache_hit: bool
) -> list[Outcome]:
    rows = np.concatenate([job.inputs for job in jobs]) if len(jobs) > 1 else jobs[0].inputs
    started = time.perf_counter()
    predictions = runtime.predict(rows)
    probabilities = classes = None
    if any(job.return_probabilities for job in jobs):
        probabilities, classes = runtime.predict_proba(rows)
    elapsed_ms = (time.perf_counter() - started) * 1000
    outcomes, offset = [], 0
    for job in jobs:
        n = len(job.inputs)
        result: dict[str, Any] = {"predictions": predictions[offset : offset + n]}
        if job.return_probabilities and probabilities is not None:
            result["probabilities"] = probabilities[offset : offset + n]
            result["classes"] = classes
        offset += n
        # Each job is charged its share of the batch's inference time.
        share = elapsed_ms * n / len(rows)
        outcomes.append(
            Outcome(
                job.id,
                job.attempts,
                "succeeded",
                result,
                None,
                None,
                share,
                cache_hit,
                runtime.name,
            )
        )
    return outcomes
