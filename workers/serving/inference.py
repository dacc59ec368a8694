"""Pure inference: claimed jobs and a runtime in, one outcome per job out (no database, no Redis).

One predict call serves the whole batch; if it fails, each job runs alone so that one bad job
fails only itself. The pipeline (workers/serving/pipeline.py) claims before and writes after.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded

from shared import failures
from shared.config import get_settings
from shared.jobs.rows import OUTCOME_RECORD
from workers.runtimes.base import ModelRuntime

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass
class ClaimedJob:
    id: uuid.UUID
    attempts: int
    inputs: np.ndarray | pd.DataFrame  # float64 matrix, or typed columns (shared/jobs/inputs.py)
    return_probabilities: bool
    return_scores: bool = False


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


def failed(job: ClaimedJob, code: str, message: str, **extra: Any) -> Outcome:
    return Outcome(job.id, job.attempts, "failed", error_code=code, error_message=message, **extra)


def out_of_memory(job: ClaimedJob, **extra: Any) -> Outcome:
    """A job whose prediction (or model) did not fit in the worker child's memory cap."""
    limit = get_settings().worker_memory_limit_mb
    message = (
        f"prediction needed more memory than the worker's limit (WORKER_MEMORY_LIMIT_MB={limit})"
    )
    return failed(job, failures.OUT_OF_MEMORY, message, **extra)


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
            job, failures.INFERENCE_ERROR, message[:500], cache_hit=cache_hit, runtime=runtime.name
        )


def _stacked(parts: list[Any]) -> Any:
    """The batch's rows as one input: a model's jobs all carry the same form."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    import pandas as pd

    return pd.concat(parts, ignore_index=True)


def _predict_stacked(
    runtime: ModelRuntime, jobs: list[ClaimedJob], cache_hit: bool
) -> list[Outcome]:
    rows = _stacked([job.inputs for job in jobs])
    started = time.perf_counter()
    predictions = runtime.predict(rows)
    probabilities = classes = None
    if any(job.return_probabilities for job in jobs):
        probabilities, classes = runtime.predict_proba(rows)
    scores = runtime.score_samples(rows) if any(job.return_scores for job in jobs) else None
    elapsed_ms = (time.perf_counter() - started) * 1000
    outcomes, offset = [], 0
    for job in jobs:
        n = len(job.inputs)
        result: dict[str, Any] = {"predictions": predictions[offset : offset + n]}
        if job.return_probabilities and probabilities is not None:
            result["probabilities"] = probabilities[offset : offset + n]
            result["classes"] = classes
        if job.return_scores and scores is not None:
            result["scores"] = scores[offset : offset + n]
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
