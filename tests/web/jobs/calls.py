"""The calls the job tests make: submit, long-poll, count the job rows."""

from __future__ import annotations

from sqlalchemy import func, select

from shared.db import session_scope
from shared.jobs import Job
from tests.fixtures.models import iris

ROWS = iris()[0][::30].tolist()  # 5 rows across the three classes


def submit(client, account, model_id, body, **headers):
    return client.post(
        f"/api/v1/models/{model_id}/jobs", json=body, headers={**account.headers, **headers}
    )


def poll(client, account, job_id, wait=10):
    return client.get(f"/api/v1/jobs/{job_id}?wait={wait}", headers=account.headers)


def job_count() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Job))
