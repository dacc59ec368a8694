"""The analytics queries: everything is aggregated in PostgreSQL, never row by row in Python.

All three statements read one model's jobs in a time window through the covering index
`ix_jobs_model_created_cover` (model_id, created_at) INCLUDE (status, n_rows, cache_hit and the
three timings), so they are index-only scans that never touch the wide rows (inputs, results).
Percentiles are `percentile_cont`, i.e. linear interpolation between the closest ranks (numpy's
default method).

Plain functions over a SQLAlchemy session, so the benchmark (bench/analytics_1m.py) times
exactly what the endpoint runs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.jobs import JOB_STATUSES
from shared.schemas.analytics import (
    Analytics,
    DailyBucket,
    Latency,
    LatencyStats,
    RecentFailure,
)

RECENT_FAILURES = 10
# Outcomes a success rate is measured against; cancelled jobs were the caller's own choice.
OUTCOMES = ("succeeded", "failed", "expired")
TIMINGS = ("inference", "queue", "total")
# Three sorts of up to a million floats: enough memory that they never spill to disk.
WORK_MEM = "64MB"

_by_status = ",\n".join(
    f"count(*) FILTER (WHERE status = '{s}') AS n_{s}" for s in JOB_STATUSES
)  # constants from shared.models, not input
_latency = ",\n".join(
    f"percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY {t}_ms) AS {t}_p, "
    f"avg({t}_ms) AS {t}_mean"
    for t in TIMINGS
)

SUMMARY = text(
    f"""
    SELECT count(*) AS total,
           {_by_status},
           coalesce(sum(n_rows) FILTER (WHERE status = 'succeeded'), 0) AS rows_predicted,
           avg(cache_hit::int) AS cache_hit_rate,
           {_latency}
    FROM jobs
    WHERE model_id = :model_id AND created_at >= :since
    """  # noqa: S608 - the interpolated parts are module constants
)

# Rows of the model's batches (bulk file predictions) answered in the window.
BATCH_ROWS = text(
    """
    SELECT coalesce(sum(rows_done - rows_failed), 0) AS rows
    FROM batches
    WHERE model_id = :model_id AND created_at >= :since
    """
)

DAILY = text(
    """
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS total,
           count(*) FILTER (WHERE status = 'failed') AS failed, avg(total_ms) AS mean_total_ms
    FROM jobs
    WHERE model_id = :model_id AND created_at >= :since
    GROUP BY day
    """
)

# Newest first by submission: a backward walk of the index that stops at the 10th failure.
FAILURES = text(
    """
    SELECT id, coalesce(finished_at, created_at) AS at, error_code, error_message
    FROM jobs
    WHERE model_id = :model_id AND created_at >= :since AND status = 'failed'
    ORDER BY created_at DESC, id DESC
    LIMIT :limit
    """
)


def window_start(days: int, now: datetime | None = None) -> datetime:
    """UTC midnight `days - 1` days ago: the window is `days` whole calendar days, today last."""
    today = (
        (now or datetime.now(UTC))
        .astimezone(UTC)
        .replace(hour=0, minute=0, second=0, microsecond=0)
    )
    return today - timedelta(days=days - 1)


def model_analytics(
    session: Session,
    model_id: uuid.UUID,
    days: int,
    now: datetime | None = None,
    timeout_ms: int = 5000,
) -> Analytics:
    """The analytics object of one model over the last `days` days (ownership checked before).

    Cost grows with the jobs in the window (three sorts for the percentiles), not with the size
    of the table; `timeout_ms` caps each statement so a huge window cannot hog the database.
    """
    since = window_start(days, now)
    params = {"model_id": model_id, "since": since}
    tune_transaction(session, timeout_ms)
    summary = session.execute(SUMMARY, params).mappings().one()
    daily = session.execute(DAILY, params).all()
    failures = session.execute(FAILURES, {**params, "limit": RECENT_FAILURES}).all()
    return Analytics(
        model_id=model_id,
        days=days,
        since=since,
        total=summary["total"],
        by_status={s: summary[f"n_{s}"] for s in JOB_STATUSES},
        success_rate=_success_rate(summary),
        rows_predicted=summary["rows_predicted"] + session.scalar(BATCH_ROWS, params),
        cache_hit_rate=_float(summary["cache_hit_rate"]),
        latency_ms=Latency(**{t: _stats(summary, t) for t in TIMINGS}),
        daily=_daily_buckets(daily, since, days),
        recent_failures=[
            RecentFailure(job_id=r.id, at=r.at, code=r.error_code, message=r.error_message)
            for r in failures
        ],
    )


def tune_transaction(session: Session, timeout_ms: int) -> None:
    """Settings for this transaction only (SET LOCAL: the pooled connection is reset after)."""
    session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    session.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
    # JIT compiling these plans costs more (~50-100 ms) than it saves on a window this size.
    session.execute(text("SET LOCAL jit = off"))


def _success_rate(summary: Any) -> float | None:
    outcomes = sum(summary[f"n_{s}"] for s in OUTCOMES)
    return summary["n_succeeded"] / outcomes if outcomes else None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _stats(summary: Any, timing: str) -> LatencyStats:
    percentiles = summary[f"{timing}_p"] or [None, None, None]
    p50, p95, p99 = (_float(v) for v in percentiles)
    return LatencyStats(p50=p50, p95=p95, p99=p99, mean=_float(summary[f"{timing}_mean"]))


def _daily_buckets(rows: list[Any], since: datetime, days: int) -> list[DailyBucket]:
    """Every day of the window, zero-filled, so charts need no gap handling."""
    found = {r.day: r for r in rows}
    buckets = []
    for offset in range(days):
        day = (since + timedelta(days=offset)).date()
        row = found.get(day)
        buckets.append(
            DailyBucket(
                date=day,
                total=row.total if row else 0,
                failed=row.failed if row else 0,
                mean_total_ms=_float(row.mean_total_ms) if row else None,
            )
        )
    return buckets
