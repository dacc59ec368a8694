"""The job rows each tier writes, as plain dicts keyed by column, and the column lists that the
statements in shared/jobs/statements.py are made of."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shared.inline_jobs import InlineJob
from shared.jobs import inputs

# A job accepted by the web tier: the row is written before its id is queued.
QUEUED = (
    "id",
    "model_id",
    "model_version",
    "owner_id",
    "status",
    "input_matrix",
    "n_rows",
    "return_probabilities",
    "return_scores",
    "idempotency_key",
    "request_hash",
    "request_id",
    "attempts",
    "created_at",
    "enqueued_at",
    "route",
    "shadow_of",
)
# What a worker reads to run a job it claimed.
CLAIMED = ("id", "attempts", "inputs", "input_matrix", "return_probabilities", "return_scores")
# What a prediction decides about one job (an Outcome's record is these plus id and attempts).
OUTCOME = (
    "status",
    "result",
    "error_code",
    "error_message",
    "inference_ms",
    "cache_hit",
    "runtime",
)
OUTCOME_RECORD = ("id", "attempts", *OUTCOME)
# Set on the worker's side when a job finishes, besides the outcome.
FINISH = ("worker", "queue_ms", "total_ms", "started_at", "finished_at")
# An inline job (sync predict) is inserted finished: its whole row at once.
FINISHED = (
    "id",
    "model_id",
    "model_version",
    "owner_id",
    "input_matrix",
    "n_rows",
    "return_probabilities",
    "return_scores",
    "attempts",
    "request_id",
    "created_at",
    "enqueued_at",
    "route",
    "shadow_of",
    *OUTCOME,
    *FINISH,
)
# What a result write returns for each job it stored: the job's log line and metrics.
REPORTED = (
    "id",
    "model_id",
    "status",
    "request_id",
    "attempts",
    "n_rows",
    "runtime",
    "cache_hit",
    "worker",
    "error_code",
    "queue_ms",
    "inference_ms",
    "total_ms",
)

# What a waited job's reply needs from its write besides REPORTED (the result and error message
# come from the worker's memory, not back from the database).
REPLIED = ("model_version", "created_at", "started_at", "finished_at", "route", "shadow_of")


def queued_row(
    *,
    model_id: uuid.UUID,
    model_version: int,
    owner_id: uuid.UUID,
    rows: Any,
    probabilities: bool,
    request_id: str | None,
    scores: bool = False,
    job_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    route: str = "explicit",
    shadow_of: uuid.UUID | None = None,
) -> dict[str, Any]:
    """A new job's row, `queued`: written by the web tier before the job's id is queued; `rows`
    are a float64 matrix or a table of typed columns (shared/jobs/inputs.py)."""
    now = datetime.now(UTC)
    return {
        "id": job_id or uuid.uuid4(),
        "model_id": model_id,
        "model_version": model_version,
        "owner_id": owner_id,
        "status": "queued",
        "input_matrix": inputs.encode(rows),
        "n_rows": len(rows),
        "return_probabilities": probabilities,
        "return_scores": scores,
        "idempotency_key": idempotency_key,
        "request_hash": request_hash,
        "request_id": request_id,
        "attempts": 0,
        "created_at": created_at or now,
        "enqueued_at": now,
        "route": route,
        "shadow_of": shadow_of,
    }


def finished_row(
    job: InlineJob,
    rows: Any,
    outcome: Mapping[str, Any],
    started: float,
    finished: float,
    worker: str,
) -> dict[str, Any]:
    """An inline job's finished row, timed on the worker's clock, as JSON-ready values but for
    `input_matrix`, the stored bytes (workers/serving/results.py writes them as a bytea literal,
    or by COPY when big): `rows` are the job's rows as claimed, `outcome` an Outcome's record."""
    created = min(job.created_at, started)  # two hosts' clocks: never a negative wait
    row = {
        "id": job.id,
        "model_id": job.model_id,
        "model_version": job.model_version,
        "owner_id": job.owner_id,
        "input_matrix": inputs.text_bytes(job.inputs, rows),
        "n_rows": len(rows),
        "return_probabilities": job.return_probabilities,
        "return_scores": job.return_scores,
        "attempts": 1,
        "request_id": job.request_id,
        "created_at": _ts(created),
        "enqueued_at": _ts(created),
        "route": job.route,
        "shadow_of": job.shadow_of,
        "worker": worker,
        "queue_ms": (started - created) * 1000,
        "total_ms": (finished - created) * 1000,
        "started_at": _ts(started),
        "finished_at": _ts(finished),
    }
    return row | {name: outcome[name] for name in OUTCOME}


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
