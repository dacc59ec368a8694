"""Analytics of a model name: each version's analytics object side by side, and how each shadow
version's predictions compare with those of the jobs it shadowed.

The agreement query walks the shadow version's jobs in the window through the (model_id,
created_at) index, joins each to its primary by primary key, and compares the two prediction
arrays element by element in PostgreSQL (`WITH ORDINALITY` pairs row i with row i).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.aliases.schemas import NameAnalytics, ShadowAgreement
from shared.models import MLModel
from web.analytics.queries import model_analytics, tune_transaction, window_start

AGREEMENT = text(
    """
    SELECT p.model_version AS primary_version,
           count(DISTINCT s.id) AS jobs,
           count(*) AS rows,
           count(*) FILTER (WHERE sv.value = pv.value) AS agree,
           avg(CASE WHEN jsonb_typeof(sv.value) = 'number' AND jsonb_typeof(pv.value) = 'number'
                    THEN abs(sv.value::float8 - pv.value::float8) END) AS mean_abs_diff
    FROM jobs s
    JOIN jobs p ON p.id = s.shadow_of AND p.owner_id = s.owner_id
    CROSS JOIN LATERAL jsonb_array_elements(s.result -> 'predictions')
        WITH ORDINALITY AS sv(value, i)
    JOIN LATERAL jsonb_array_elements(p.result -> 'predictions')
        WITH ORDINALITY AS pv(value, i) ON pv.i = sv.i
    WHERE s.model_id = :model_id AND s.created_at >= :since AND s.route = 'shadow'
      AND s.status = 'succeeded' AND p.status = 'succeeded'
    GROUP BY p.model_version
    ORDER BY p.model_version
    """
)


def name_analytics(
    session: Session,
    name: str,
    versions: list[MLModel],
    days: int,
    timeout_ms: int,
    now: datetime | None = None,
) -> NameAnalytics:
    """`versions` are the caller's versions of `name` (ownership checked before)."""
    per_version = {
        str(m.version): model_analytics(session, m.id, days, now=now, timeout_ms=timeout_ms)
        for m in sorted(versions, key=lambda m: m.version)
    }
    since = window_start(days, now)
    tune_transaction(session, timeout_ms)
    shadow = [
        pair
        for m in sorted(versions, key=lambda m: m.version)
        for pair in _agreement(session, m, since)
    ]
    return NameAnalytics(name=name, days=days, versions=per_version, shadow=shadow)


def _agreement(session: Session, model: MLModel, since: datetime) -> list[ShadowAgreement]:
    regressor = (model.output_schema or {}).get("task") == "regression"
    rows = session.execute(AGREEMENT, {"model_id": model.id, "since": since}).all()
    return [
        ShadowAgreement(
            shadow_version=model.version,
            primary_version=r.primary_version,
            jobs=r.jobs,
            rows=r.rows,
            agreement=r.agree / r.rows if r.rows else None,
            mean_abs_diff=_float(r.mean_abs_diff) if regressor else None,
        )
        for r in rows
    ]


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
