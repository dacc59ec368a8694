"""Inline jobs (sync predictions queued with their rows, shared/inline_jobs.py) on the worker:
predicted with the batch like any job, then inserted as finished rows by the same statement that
writes the batch's other results (workers/results.py), and answered with the job object itself.

The insert is conditional like every result write: if the web tier gave up waiting it inserted
the row as `queued` first, and then this result lands only while the row is still `queued` (not
cancelled, not taken by the id it also queued); otherwise it is dropped, and the other run's
result stands.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from shared.inline_jobs import InlineJob
from shared.matrix import to_npy
from workers.inference import ClaimedJob, Outcome

# The inline jobs' rows ($2: a JSON array of records()); part of workers/results.py's one
# statement.
INSERT_ROWS = """
    INSERT INTO jobs (id, model_id, model_version, owner_id, status, input_matrix, n_rows,
        return_probabilities, result, error_code, error_message, attempts, worker, runtime,
        cache_hit, queue_ms, inference_ms, total_ms, request_id, created_at, enqueued_at,
        started_at, finished_at)
    SELECT v.id, v.model_id, v.model_version, v.owner_id, v.status, decode(v.inputs, 'hex'),
        v.n_rows,
        v.return_probabilities, v.result, v.error_code, v.error_message, v.attempts, v.worker,
        v.runtime, v.cache_hit, v.queue_ms, v.inference_ms, v.total_ms, v.request_id,
        v.created_at, v.created_at, v.started_at, v.finished_at
    FROM jsonb_to_recordset(CAST($2 AS jsonb)) AS v(
        id uuid, model_id uuid, model_version int, owner_id uuid, status text, inputs text,
        n_rows int, return_probabilities bool, result jsonb, error_code text, error_message text,
        attempts int, worker text, runtime text, cache_hit bool, queue_ms float8,
        inference_ms float8, total_ms float8, request_id text, created_at timestamptz,
        started_at timestamptz, finished_at timestamptz)
    ON CONFLICT (id) DO UPDATE SET
        status = EXCLUDED.status, result = EXCLUDED.result, error_code = EXCLUDED.error_code,
        error_message = EXCLUDED.error_message, attempts = jobs.attempts + 1,
        worker = EXCLUDED.worker, runtime = EXCLUDED.runtime, cache_hit = EXCLUDED.cache_hit,
        queue_ms = EXCLUDED.queue_ms, inference_ms = EXCLUDED.inference_ms,
        total_ms = EXCLUDED.total_ms, started_at = EXCLUDED.started_at,
        finished_at = EXCLUDED.finished_at
    WHERE jobs.status = 'queued'
    RETURNING id, attempts
"""


def claimed(job: InlineJob) -> ClaimedJob:
    """An inline job runs as its first attempt: it has no row to count attempts in."""
    rows = np.asarray(job.inputs, dtype=np.float64)
    return ClaimedJob(uuid.UUID(job.id), 1, rows, job.return_probabilities)


def split_stale(jobs: list[InlineJob], now: float) -> tuple[list[InlineJob], list[InlineJob]]:
    """(fresh, stale): nobody waits for a stale entry, and if a 202 was answered its id is
    queued as well (with attempt counting, so a job that kills workers cannot loop here)."""
    fresh: list[InlineJob] = []
    stale: list[InlineJob] = []
    for job in jobs:
        (stale if job.stale(now) else fresh).append(job)
    return fresh, stale


def records(
    jobs: dict[uuid.UUID, ClaimedJob],
    meta: dict[uuid.UUID, InlineJob],
    outcomes: list[Outcome],
    started: float,
    worker: str,
) -> list[dict[str, Any]]:
    """The finished rows of the inline jobs among `outcomes`, timed on this worker's clock."""
    finished = time.time()
    return [
        _record(meta[o.id], jobs[o.id].inputs, o, started, finished, worker)
        for o in outcomes
        if o.id in meta
    ]


def _record(
    job: InlineJob,
    rows: np.ndarray,
    outcome: Outcome,
    started: float,
    finished: float,
    worker: str,
) -> dict[str, Any]:
    created = min(job.created_at, started)  # two hosts' clocks: never a negative wait
    return {
        "id": job.id, "model_id": job.model_id, "model_version": job.model_version,
        "owner_id": job.owner_id, "status": outcome.status,
        "inputs": to_npy(rows).hex(), "n_rows": len(rows),
        "return_probabilities": job.return_probabilities,
        "result": outcome.result, "error_code": outcome.error_code,
        "error_message": outcome.error_message, "attempts": 1, "worker": worker,
        "runtime": outcome.runtime, "cache_hit": outcome.cache_hit,
        "queue_ms": (started - created) * 1000, "inference_ms": outcome.inference_ms,
        "total_ms": (finished - created) * 1000, "request_id": job.request_id,
        "created_at": _ts(created), "started_at": _ts(started), "finished_at": _ts(finished),
    }  # fmt: skip


def written(rows: list[dict[str, Any]], attempts: dict[uuid.UUID, int]) -> list[dict[str, Any]]:
    """The records the insert actually wrote (with the attempt number it stored)."""
    return [
        {**row, "id": uuid.UUID(row["id"]), "attempts": attempts[uuid.UUID(row["id"])]}
        for row in rows
        if uuid.UUID(row["id"]) in attempts
    ]


def reply(row: dict[str, Any]) -> bytes:
    """The job object of API.md, as the waiting web tier answers it."""
    error = {"code": row["error_code"], "message": row["error_message"] or ""}
    return orjson.dumps(
        {
            "id": row["id"], "model_id": row["model_id"], "model_version": row["model_version"],
            "status": row["status"], "result": row["result"],
            "error": error if row["error_code"] else None,
            "created_at": row["created_at"], "started_at": row["started_at"],
            "finished_at": row["finished_at"], "cache_hit": row["cache_hit"],
            "runtime": row["runtime"], "attempts": row["attempts"],
            "timings": {k: row[k] for k in ("queue_ms", "inference_ms", "total_ms")},
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )  # fmt: skip


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
