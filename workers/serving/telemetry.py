"""What a worker reports about the jobs it finished: one JSON log line per job and the job
metrics. Called by the prediction pipeline (workers/serving/pipeline.py) after it wrote a batch.

Each job's line carries the id of the HTTP request that created the job (jobs.request_id), so
`grep <request id>` finds the web line and the worker line of the same prediction. Inputs, results
and error messages (which may quote input values) are never logged: only the error code.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from shared.jobs.rows import REPORTED
from workers import metrics

log = logging.getLogger("mlsp.job")

# The fields of a written job the line carries (its ids go first, as job_id and model_id).
_LOGGED = tuple(name for name in REPORTED if name not in ("id", "model_id"))


def record_batch(model_id: str, batch_size: int, rows: Sequence[dict[str, Any]]) -> None:
    """Log and count one written batch: `batch_size` jobs were predicted together, `rows` are the
    ones whose result was stored (the fence may drop some), as the result write returned them.

    Never raises: reporting must not fail a job that has already been written.
    """
    try:
        metrics.observe_jobs(batch_size, rows)
        for row in rows:
            log_job(model_id, row)
    except Exception:
        log.warning("job telemetry failed for model %s", model_id, exc_info=True)


def log_job(model_id: str, row: dict[str, Any]) -> None:
    """One line per finished job; WARNING when it failed."""
    level = logging.WARNING if row["status"] == "failed" else logging.INFO
    if not log.isEnabledFor(level):
        return  # a line per job: its fields are not worth building for nobody
    fields = {"job_id": str(row["id"]), "model_id": str(model_id)}
    fields |= {key: row.get(key) for key in _LOGGED}
    log.log(level, "job %s %s", fields["job_id"], row["status"], extra=fields)
