"""Idempotency-Key (web/jobs/idempotency.py): a retry answers the same job, a different body
under the same key is a 409, and the key is free again after 24 hours."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, update

from shared.db import session_scope
from shared.jobs import Job
from tests.fixtures.models import fit_classifier, insert_ready_model, upload_ready
from tests.web.jobs.calls import ROWS, job_count, submit

pytestmark = [pytest.mark.e2e]


@pytest.mark.usefixtures("worker")
class TestWithWorker:
    def test_sync_predict_with_idempotency_key_replays(self, client, user, tmp_path):
        """With an Idempotency-Key the row is written first (the durable path), so a retry
        answers the same job."""
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        url, key = f"/api/v1/models/{meta['id']}/predict", {"Idempotency-Key": "sync-1"}
        first = client.post(url, json={"inputs": ROWS}, headers={**user.headers, **key})
        again = client.post(url, json={"inputs": ROWS}, headers={**user.headers, **key})
        assert first.status_code == again.status_code == 200
        assert again.json["id"] == first.json["id"] and again.json == first.json

    def test_idempotency(self, client, user, tmp_path):
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        first = submit(client, user, meta["id"], {"inputs": ROWS}, **{"Idempotency-Key": "k1"})
        again = submit(client, user, meta["id"], {"inputs": ROWS}, **{"Idempotency-Key": "k1"})
        assert first.status_code == 202 and again.status_code in (200, 202)
        assert again.json["id"] == first.json["id"]
        other = submit(client, user, meta["id"], {"inputs": ROWS[:1]}, **{"Idempotency-Key": "k1"})
        assert other.status_code == 409
        assert other.json["error"]["code"] == "idempotency_conflict"
        assert job_count() == 1


def test_idempotency_key_is_free_again_after_24_hours(private_queue, user, tmp_path):
    client = private_queue.client
    meta = insert_ready_model(user, fit_classifier(), tmp_path)
    key = {"Idempotency-Key": "daily-1"}
    first = submit(client, user, meta, {"inputs": ROWS}, **key).json["id"]
    with session_scope() as s:
        s.execute(
            update(Job).where(Job.id == first).values(created_at=func.now() - timedelta(hours=25))
        )
    again = submit(client, user, meta, {"inputs": ROWS[:1]}, **key)
    assert again.status_code == 202 and again.json["id"] != first
    replay = submit(client, user, meta, {"inputs": ROWS[:1]}, **key)
    assert replay.json["id"] == again.json["id"]
