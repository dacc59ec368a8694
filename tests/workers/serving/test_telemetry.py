"""The per-job log line and job metrics (workers/serving/telemetry.py), on the real database."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY
from sqlalchemy import select

from shared import logs
from shared.db import session_scope
from shared.jobs import Job
from shared.jobs.rows import REPORTED
from shared.models import MLModel, User
from workers.serving import telemetry

SECRET_INPUT = 9.87654321


def _jobs() -> tuple[str, list[uuid.UUID]]:
    model_id, now = uuid.uuid4(), datetime.now(UTC)
    ids = [uuid.uuid4(), uuid.uuid4()]
    with session_scope() as s:
        user = User(email=f"{model_id}@example.com", password_hash="x")
        s.add(user)
        s.flush()
        s.add(
            MLModel(
                id=model_id,
                owner_id=user.id,
                name="m",
                version=1,
                status="ready",
                format="joblib",
                artifact_key="k",
                sha256="0" * 64,
                size_bytes=1,
            )
        )
        s.flush()
        for job_id, status in zip(ids, ("succeeded", "failed"), strict=True):
            s.add(
                Job(
                    id=job_id,
                    model_id=model_id,
                    model_version=1,
                    owner_id=user.id,
                    status=status,
                    inputs=[[SECRET_INPUT]],
                    n_rows=1,
                    request_id=f"req-{status}",
                    queue_ms=20.0,
                    inference_ms=1.5,
                    total_ms=25.0,
                    cache_hit=True,
                    attempts=1,
                    error_code="inference_error" if status == "failed" else None,
                    error_message=f"ValueError: {SECRET_INPUT}" if status == "failed" else None,
                    created_at=now - timedelta(seconds=1),
                    finished_at=now,
                )
            )
    return str(model_id), ids


def _reported(ids: list[uuid.UUID]) -> list[dict]:
    """The rows as a result write returns them (shared/jobs/rows.REPORTED)."""
    with session_scope() as s:
        jobs = s.scalars(select(Job).where(Job.id.in_(ids))).all()
        return [{name: getattr(job, name) for name in REPORTED} for job in jobs]


def test_one_line_per_job_with_its_request_id(caplog):
    model_id, ids = _jobs()
    caplog.set_level(logging.INFO, logger="mlsp.job")
    with logs.bound(request_id="the-waking-request", task_id="t-1"):
        telemetry.record_batch(model_id, 2, _reported(ids))
        lines = [json.loads(logs.JsonFormatter().format(r)) for r in caplog.records]
    by_job = {line["job_id"]: line for line in lines if line["logger"] == "mlsp.job"}
    ok, bad = by_job[str(ids[0])], by_job[str(ids[1])]
    assert ok["request_id"] == "req-succeeded" and ok["task_id"] == "t-1"
    assert ok["status"] == "succeeded" and ok["level"] == "INFO"
    assert (ok["queue_ms"], ok["inference_ms"], ok["total_ms"]) == (20.0, 1.5, 25.0)
    assert bad["level"] == "WARNING" and bad["error_code"] == "inference_error"
    assert str(SECRET_INPUT) not in json.dumps(lines)


def test_job_metrics_move():
    model_id, ids = _jobs()
    before = REGISTRY.get_sample_value("mlsp_jobs_finished_total", {"status": "succeeded"}) or 0
    batches = REGISTRY.get_sample_value("mlsp_batch_size_count") or 0
    telemetry.record_batch(model_id, 3, _reported(ids))
    after = REGISTRY.get_sample_value("mlsp_jobs_finished_total", {"status": "succeeded"})
    assert after == before + 1
    assert REGISTRY.get_sample_value("mlsp_batch_size_count") == batches + 1


def test_reporting_never_raises(caplog, monkeypatch):
    def broken(*_args):
        raise RuntimeError("metrics gone")

    monkeypatch.setattr(telemetry.metrics, "observe_jobs", broken)
    telemetry.record_batch("m", 1, [{"id": uuid.uuid4(), "status": "succeeded"}])
    assert "job telemetry failed" in caplog.text
