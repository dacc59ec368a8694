"""GET /models/{id}/analytics against a known set of job rows inserted directly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import text

from shared.db import get_engine, session_scope
from shared.jobs import Job
from shared.models import MLModel
from web.analytics.queries import DAILY, SUMMARY, window_start

SECRET_INPUT = 4242.4242  # must never appear in an analytics answer
NOW = datetime.now(UTC)


def _model(owner_id: str) -> uuid.UUID:
    model_id = uuid.uuid4()
    with session_scope() as s:
        s.add(
            MLModel(
                id=model_id,
                owner_id=uuid.UUID(owner_id),
                name=f"m{model_id.hex[:6]}",
                version=1,
                status="ready",
                format="joblib",
                artifact_key="x.joblib",
                sha256="0" * 64,
                size_bytes=1,
                input_schema={"n_features": 1, "feature_names": None},
            )
        )
    return model_id


def _job(model_id: uuid.UUID, owner: str, status: str, age: timedelta, **cols) -> dict:
    created = NOW - age
    finished = created + timedelta(seconds=1) if status in ("succeeded", "failed") else None
    return {
        "id": uuid.uuid4(),
        "model_id": model_id,
        "model_version": 1,
        "owner_id": uuid.UUID(owner),
        "status": status,
        "inputs": [[SECRET_INPUT]],
        "n_rows": 1,
        "created_at": created,
        "finished_at": finished,
        **cols,
    }


def _known_jobs(model_id: uuid.UUID, owner: str) -> list[dict]:
    """40 jobs over the last 3 days with varied timings; 8 failures; a few unfinished."""
    rng = np.random.default_rng(7)
    jobs = []
    for i in range(40):
        status = "failed" if i % 5 == 0 else "succeeded"
        age = timedelta(days=i % 3, minutes=i)
        inference, queue = float(rng.gamma(2, 3)), float(rng.gamma(1.5, 10))
        jobs.append(
            _job(
                model_id,
                owner,
                status,
                age,
                n_rows=1 + i % 4,
                cache_hit=i % 3 != 0,
                inference_ms=inference,
                queue_ms=queue,
                total_ms=inference + queue + 1,
                error_code="inference_error" if status == "failed" else None,
                error_message=f"ValueError: bad row {i}" if status == "failed" else None,
            )
        )
    jobs += [_job(model_id, owner, "queued", timedelta(minutes=1)) for _ in range(2)]
    jobs += [_job(model_id, owner, "cancelled", timedelta(minutes=2))]
    jobs += [_job(model_id, owner, "expired", timedelta(hours=1))]
    return jobs


def _insert(rows: list[dict]) -> None:
    with session_scope() as s:
        s.add_all(Job(**row) for row in rows)


@pytest.fixture
def known(user) -> tuple[uuid.UUID, list[dict]]:
    model_id = _model(user.id)
    jobs = _known_jobs(model_id, user.id)
    # Noise that must not count: too old for the window, and another model of the same user.
    old = [_job(model_id, user.id, "failed", timedelta(days=30), inference_ms=1e6)]
    other = _known_jobs(_model(user.id), user.id)
    _insert(jobs + old + other)
    return model_id, jobs


def _get(client, account, model_id, query: str = ""):
    return client.get(f"/api/v1/models/{model_id}/analytics{query}", headers=account.headers)


def _expected_stats(values: list[float]) -> dict:
    p50, p95, p99 = np.percentile(values, [50, 95, 99])  # linear interpolation, like SQL
    return {"p50": p50, "p95": p95, "p99": p99, "mean": float(np.mean(values))}


def test_totals_rates_and_percentiles(client, user, known):
    model_id, jobs = known
    resp = _get(client, user, model_id)
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert body["model_id"] == str(model_id) and body["days"] == 7
    assert body["total"] == len(jobs) == 44
    assert body["by_status"] == {
        "queued": 2,
        "running": 0,
        "succeeded": 32,
        "failed": 8,
        "cancelled": 1,
        "expired": 1,
    }
    assert body["success_rate"] == pytest.approx(32 / (32 + 8 + 1))
    succeeded = [j for j in jobs if j["status"] == "succeeded"]
    assert body["rows_predicted"] == sum(j["n_rows"] for j in succeeded)
    hits = [j["cache_hit"] for j in jobs if j.get("cache_hit") is not None]
    assert body["cache_hit_rate"] == pytest.approx(sum(hits) / len(hits))
    for name in ("inference", "queue", "total"):
        values = [j[f"{name}_ms"] for j in jobs if j.get(f"{name}_ms") is not None]
        expected = _expected_stats(values)
        assert body["latency_ms"][name] == pytest.approx(expected, rel=1e-9), name


def test_daily_buckets_cover_the_window(client, user, known):
    model_id, jobs = known
    body = _get(client, user, model_id, "?days=5").json
    days = [(NOW - timedelta(days=4 - i)).date().isoformat() for i in range(5)]
    assert [d["date"] for d in body["daily"]] == days
    for bucket in body["daily"]:
        mine = [j for j in jobs if j["created_at"].date().isoformat() == bucket["date"]]
        assert bucket["total"] == len(mine)
        assert bucket["failed"] == sum(j["status"] == "failed" for j in mine)
        totals = [j["total_ms"] for j in mine if j.get("total_ms") is not None]
        assert bucket["mean_total_ms"] == (pytest.approx(np.mean(totals)) if totals else None)
    assert sum(d["total"] for d in body["daily"]) == body["total"]


def test_recent_failures_newest_first_without_inputs(client, user, known):
    model_id, jobs = known
    resp = _get(client, user, model_id, "?days=90")
    failures = resp.json["recent_failures"]
    failed = sorted(
        (j for j in jobs if j["status"] == "failed"), key=lambda j: j["created_at"], reverse=True
    )
    # The 30-day-old failure is in a 90-day window too, and the oldest: still 8 newer ones first.
    assert [f["job_id"] for f in failures[:8]] == [str(j["id"]) for j in failed]
    assert len(failures) == 9
    assert failures[0]["code"] == "inference_error"
    assert failures[0]["message"] == failed[0]["error_message"]
    assert datetime.fromisoformat(failures[0]["at"]) == failed[0]["finished_at"]
    assert str(SECRET_INPUT) not in resp.get_data(as_text=True)


def test_window_is_whole_utc_days(client, user, known):
    model_id, jobs = known
    assert _get(client, user, model_id, "?days=90").json["total"] == len(jobs) + 1
    today = _get(client, user, model_id, "?days=1").json
    assert today["total"] == sum(j["created_at"].date() == NOW.date() for j in jobs)
    assert today["since"].startswith(NOW.date().isoformat() + "T00:00:00")


def test_empty_model_has_nulls_not_errors(client, user):
    body = _get(client, user, _model(user.id)).json
    assert body["total"] == 0 and body["success_rate"] is None
    assert body["cache_hit_rate"] is None and body["rows_predicted"] == 0
    assert body["latency_ms"]["total"] == {"p50": None, "p95": None, "p99": None, "mean": None}
    assert len(body["daily"]) == 7 and body["recent_failures"] == []


def test_other_users_model_is_404(client, user, other_user, known):
    model_id, _ = known
    resp = _get(client, other_user, model_id)
    assert resp.status_code == 404
    assert resp.json["error"]["code"] == "not_found"
    assert _get(client, user, uuid.uuid4()).status_code == 404


@pytest.mark.parametrize("query", ["?days=0", "?days=91", "?days=x", "?other=1"])
def test_bad_days_is_422(client, user, known, query):
    model_id, _ = known
    resp = _get(client, user, model_id, query)
    assert resp.status_code == 422
    assert "error" in resp.json


def test_documented_in_openapi(client):
    doc = client.get("/api/v1/openapi.json").json
    assert "/api/v1/models/{model_id}/analytics" in doc["paths"]


def test_queries_use_the_covering_index(user, known):
    """With sequential scans ruled out (the table is tiny here), the two full-window statements
    are index-only scans of the covering index (bench/analytics_1m.py checks it at scale)."""
    model_id, _ = known
    params = {"model_id": model_id, "since": window_start(7)}
    with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) jobs"))  # sets the visibility map: index-only
    with session_scope() as s:
        s.execute(text("SET LOCAL enable_seqscan = off"))
        s.execute(text("SET LOCAL enable_bitmapscan = off"))
        for statement in (SUMMARY, DAILY):
            plan = _plan(s, statement, params)
            assert "Index Only Scan using ix_jobs_model_created_cover" in plan, plan


def _plan(session, statement, params) -> str:
    explain = text("EXPLAIN " + statement.text)
    return "\n".join(r[0] for r in session.execute(explain, params))
