"""The SQL that writes job rows, made from the column lists of shared/jobs/rows.py and the
column types of the table.

The worker's statements stay raw SQL, PREPAREd once per connection (shared/db.kept_execute): they
run for every batch, and a statement not parsed and planned again each time is most of what made
the result write cheap (docs/measurements.md, "The result write's prepared-statement costs").
Each carries a name to prepare it under; change the name with the text, since a connection keeps
the statement it prepared.
"""

# ruff: noqa: S608 (every statement is composed of this package's constants; values are parameters)
from __future__ import annotations

from sqlalchemy import bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert

from shared.jobs import copy as job_copy
from shared.jobs.rows import (
    CLAIMED,
    FINISH,
    FINISHED,
    OUTCOME,
    OUTCOME_RECORD,
    QUEUED,
    REPLIED,
    REPORTED,
)
from shared.jobs.table import Job

_DIALECT = postgresql.dialect()

# The web tier's insert of a queued job. A job id never repeats; the ON CONFLICT is for a sync
# predict whose wait ran out, racing the worker that inserts the same job finished. A reused
# Idempotency-Key still raises IntegrityError (its unique index is not the conflict target).
INSERT_QUEUED = (
    insert(Job.__table__)
    .values({name: bindparam(name) for name in QUEUED})
    .on_conflict_do_nothing(index_elements=["id"])
    .returning(Job.id)
)


def _recordset(columns: tuple[str, ...]) -> str:
    """`jsonb_to_recordset`'s column definitions, typed as the table types them."""
    table = Job.__table__.c
    return ", ".join(f"{name} {table[name].type.compile(dialect=_DIALECT)}" for name in columns)


def _claimed(name: str) -> str:
    """A claimed column; a big matrix is left for a binary COPY (shared/jobs/copy.py), its size
    said instead (read from the TOAST pointer: the value itself is not fetched)."""
    if name != "input_matrix":
        return name
    return (
        f"CASE WHEN octet_length(input_matrix) < {job_copy.COPY_MIN_BYTES} THEN input_matrix END"
        " AS input_matrix, octet_length(input_matrix) AS matrix_bytes"
    )


CLAIM_NAME = "mlsp_claim_jobs_v3"
# Take jobs for a run: each claim is a new attempt, whose number fences the result write.
CLAIM = f"""(uuid[], uuid, text) AS
    UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = now(), worker = $3
    WHERE id = ANY($1) AND model_id = $2 AND status IN ('queued', 'running')
    RETURNING {", ".join(_claimed(name) for name in CLAIMED)}
"""

# What a result write returns of each job it updated: for its log line and metrics, and its
# waiter's reply.
_WRITTEN = REPORTED + REPLIED

# The fenced UPDATE of claimed jobs' results ($1: a JSON array of outcome records): it lands only
# while the job is still running the same attempt. The database times the job.
_UPDATE_RESULTS = f"""
    UPDATE jobs AS j SET {", ".join(f"{name} = v.{name}" for name in OUTCOME)},
        finished_at = clock_timestamp(),
        queue_ms = EXTRACT(EPOCH FROM (j.started_at - j.created_at)) * 1000,
        total_ms = EXTRACT(EPOCH FROM (clock_timestamp() - j.created_at)) * 1000
    FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS v({_recordset(OUTCOME_RECORD)})
    WHERE j.id = v.id AND j.status = 'running' AND j.attempts = v.attempts
    RETURNING {", ".join(f"j.{name}" for name in _WRITTEN)}
"""

# Inline jobs' finished rows ($2: a JSON array of rows.finished_row()). If the web tier gave up
# waiting it inserted the row as `queued` first: then the result lands only while the row is
# still `queued` (not cancelled, not taken by the id it also queued), otherwise the other run's
# result stands.
_INSERT_FINISHED = f"""
    INSERT INTO jobs ({", ".join(FINISHED)})
    SELECT {", ".join(FINISHED)}
    FROM jsonb_to_recordset(CAST($2 AS jsonb)) AS v({_recordset(FINISHED)})
    ON CONFLICT (id) DO UPDATE SET
        {", ".join(f"{name} = EXCLUDED.{name}" for name in OUTCOME + FINISH)},
        attempts = jobs.attempts + 1
    WHERE jobs.status = 'queued'
    RETURNING id, attempts
"""

WRITE_RESULTS_NAME = "mlsp_write_results_v5"
# A batch's one result write: both data-modifying CTEs are one statement, atomic, and need no
# BEGIN/COMMIT round trips in autocommit.
WRITE_RESULTS = f"""(text, text) AS
    WITH updated AS ({_UPDATE_RESULTS}), inserted AS ({_INSERT_FINISHED})
    SELECT 'updated' AS kind, {", ".join(_WRITTEN)} FROM updated
    UNION ALL
    SELECT 'inserted', {", ".join(n if n in ("id", "attempts") else "NULL" for n in _WRITTEN)}
    FROM inserted
"""
