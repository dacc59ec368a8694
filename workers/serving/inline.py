"""Inline jobs (sync predictions queued with their rows, shared/inline_jobs.py) on the worker:
predicted with the batch like any job, then inserted as finished rows by the same statement that
writes the batch's other results (workers/serving/results.py, shared/jobs/statements.py), and
answered with the job object itself (shared/jobs/render.py).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from shared.inline_jobs import InlineJob
from shared.jobs import inputs
from shared.jobs.rows import finished_row
from workers.serving.inference import ClaimedJob, Outcome


def claimed(job: InlineJob) -> ClaimedJob:
    """An inline job runs as its first attempt: it has no row to count attempts in."""
    rows = inputs.from_text(job.inputs)
    return ClaimedJob(uuid.UUID(job.id), 1, rows, job.return_probabilities, job.return_scores)


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
        finished_row(meta[o.id], jobs[o.id].inputs, o.as_record(), started, finished, worker)
        for o in outcomes
        if o.id in meta
    ]


def written(rows: list[dict[str, Any]], attempts: dict[uuid.UUID, int]) -> list[dict[str, Any]]:
    """The records the insert actually wrote (with the attempt number it stored)."""
    return [
        {**row, "id": uuid.UUID(row["id"]), "attempts": attempts[uuid.UUID(row["id"])]}
        for row in rows
        if uuid.UUID(row["id"]) in attempts
    ]
