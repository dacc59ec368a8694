"""The job service (web/jobs/service.py) with no worker running, then one: a sync prediction
that times out becomes durable, a cancelled job never runs, a long-poll returns when its job
finishes."""

from __future__ import annotations

import time

import pytest

from tests.fixtures.models import fit_classifier, insert_ready_model
from tests.web.jobs.calls import ROWS, job_count, poll, submit

pytestmark = [pytest.mark.e2e]


def test_sync_predict_without_worker_times_out_then_finishes(private_queue, user, tmp_path):
    client = private_queue.client
    meta = insert_ready_model(user, fit_classifier(), tmp_path)
    started = time.monotonic()
    resp = client.post(
        f"/api/v1/models/{meta}/predict?timeout=1", json={"inputs": ROWS}, headers=user.headers
    )
    elapsed = time.monotonic() - started
    assert resp.status_code == 202
    assert 1 <= elapsed < 1.5
    assert resp.headers["Location"].endswith(resp.json["id"])
    with private_queue.worker():
        done = poll(client, user, resp.json["id"], wait=20).json
    # Both its rows (the inline entry) and its id were queued: one result, one attempt.
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert job_count() == 1


def test_sync_predict_cancelled_after_202_never_gets_a_result(private_queue, user, tmp_path):
    client = private_queue.client
    meta = insert_ready_model(user, fit_classifier(), tmp_path)
    resp = client.post(
        f"/api/v1/models/{meta}/predict?timeout=0.2", json={"inputs": ROWS}, headers=user.headers
    )
    assert resp.status_code == 202
    assert client.delete(f"/api/v1/jobs/{resp.json['id']}", headers=user.headers).status_code == 200
    follow = submit(client, user, meta, {"inputs": ROWS}).json["id"]
    with private_queue.worker():
        assert poll(client, user, follow, wait=20).json["status"] == "succeeded"
    job = poll(client, user, resp.json["id"], wait=0).json
    assert job["status"] == "cancelled" and job["result"] is None


def test_cancel_before_pickup_never_runs(private_queue, user, tmp_path):
    client = private_queue.client
    meta = insert_ready_model(user, fit_classifier(), tmp_path)
    job_id = submit(client, user, meta, {"inputs": ROWS}).json["id"]
    resp = client.delete(f"/api/v1/jobs/{job_id}", headers=user.headers)
    assert resp.status_code == 200
    assert resp.json["status"] == "cancelled"
    follow = submit(client, user, meta, {"inputs": ROWS}).json["id"]
    with private_queue.worker():
        assert poll(client, user, follow, wait=20).json["status"] == "succeeded"
    job = poll(client, user, job_id, wait=0).json
    assert job["status"] == "cancelled"
    assert job["started_at"] is None and job["result"] is None


def test_long_poll_returns_when_job_finishes(private_queue, user, tmp_path):
    client = private_queue.client
    meta = insert_ready_model(user, fit_classifier(), tmp_path)
    job_id = submit(client, user, meta, {"inputs": ROWS}).json["id"]
    quick = poll(client, user, job_id, wait=0.2).json
    assert quick["status"] == "queued"
    with private_queue.worker():
        started = time.monotonic()
        done = poll(client, user, job_id, wait=30).json
        assert done["status"] == "succeeded"
        assert time.monotonic() - started < 25
