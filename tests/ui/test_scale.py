"""Each page is a fixed number of SQL statements however long the history is: counted with
10 and with 10,000 jobs in it (paginated queries, names joined in, no query per row)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from shared.jobs import Job
from tests.ui.pages import insert_jobs, ready_model, sign_up, user_id
from web.extensions import db

MAX_STATEMENTS = 10  # session user, page reads, analytics' SET LOCALs: none per row
# The versions compared: one version's analytics statements per version of the name (here one)
# and the shadow agreement; none per job either.
COMPARE = "/models/iris/versions?days=90"
MAX_COMPARE = 15


@contextmanager
def counted(app: Flask) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _pages(job_id: str) -> list[str]:
    today = datetime.now(UTC).date().isoformat()
    return [
        "/models",
        "/models/iris",
        "/models/iris/analytics?days=90",
        "/jobs",
        "/jobs?page=3",
        f"/jobs?model=iris&status=succeeded&date={today}",
        f"/jobs/{job_id}",
        f"/jobs/{job_id}/row",
        COMPARE,
        "/batches",
        "/webhooks",
        "/keys",
    ]


def _statements(app: Flask, client: FlaskClient, job_id: str) -> dict[str, int]:
    counts = {}
    for path in _pages(job_id):
        with counted(app) as statements:
            resp = client.get(path)
        assert resp.status_code == 200, (path, resp.status_code)
        counts[path] = len(statements)
    return counts


def _rows(client: FlaskClient) -> int:
    return len(re.findall(r'<tr id="job-', client.get("/jobs").get_data(as_text=True)))


def test_pages_cost_the_same_at_10_and_10000_jobs(app: Flask, browser_client: FlaskClient):
    owner = user_id(app, sign_up(browser_client))
    model_id = ready_model(app, owner)
    insert_jobs(app, model_id, owner, 10)
    with app.app_context():
        job_id = str(db.session.scalar(select(Job.id).limit(1)))
    few = _statements(app, browser_client, job_id)
    assert _rows(browser_client) == 10
    insert_jobs(app, model_id, owner, 9_990)
    many = _statements(app, browser_client, job_id)
    assert many == few, (few, many)
    assert many.pop(COMPARE) <= MAX_COMPARE
    assert max(many.values()) <= MAX_STATEMENTS, many
    assert _rows(browser_client) == 25  # one page
    assert "Page 1 of 400 (10000)" in browser_client.get("/jobs").get_data(as_text=True)
    insert_jobs(app, model_id, owner, 1)  # past the count's cap: "more than", and a next page
    capped = browser_client.get("/jobs?page=400").get_data(as_text=True)
    assert "Page 400 of 401+ (more than 10000)" in capped and 'rel="next"' in capped
