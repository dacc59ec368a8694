"""Prediction jobs end to end: web + real worker processes + PostgreSQL + Redis."""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select, update

from shared import cache_epoch
from shared.db import session_scope
from shared.models import Job
from shared.redis_client import get_redis
from tests.fixtures.api import create_api_key
from tests.fixtures.models import (
    FEATURES,
    fit_classifier,
    fit_frame_pipeline,
    fit_regressor,
    fit_string_labels,
    insert_ready_model,
    iris,
    upload_ready,
)
from tests.fixtures.services import isolated
from web import create_app

pytestmark = [pytest.mark.e2e]

ROWS = iris()[0][::30].tolist()  # 5 rows across the three classes


def _submit(client, account, model_id, body, **headers):
    return client.post(
        f"/api/v1/models/{model_id}/jobs", json=body, headers={**account.headers, **headers}
    )


def _poll(client, account, job_id, wait=10):
    return client.get(f"/api/v1/jobs/{job_id}?wait={wait}", headers=account.headers)


def _job_count() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Job))


@pytest.mark.usefixtures("worker")
class TestWithWorker:
    def test_async_classifier_matches_local_model(self, client, user, tmp_path):
        model = fit_classifier()
        meta = upload_ready(client, user, model, tmp_path)
        resp = _submit(client, user, meta["id"], {"inputs": ROWS, "return_probabilities": True})
        assert resp.status_code == 202
        assert resp.headers["Location"] == f"/api/v1/jobs/{resp.json['id']}"
        assert resp.json["status"] == "queued"
        done = _poll(client, user, resp.json["id"]).json
        assert done["status"] == "succeeded", done
        assert done["result"]["predictions"] == model.predict(np.array(ROWS)).tolist()
        np.testing.assert_allclose(
            done["result"]["probabilities"], model.predict_proba(np.array(ROWS)), atol=1e-12
        )
        assert done["result"]["classes"] == [0, 1, 2]
        assert done["model_version"] == 1
        timings = done["timings"]
        assert timings["queue_ms"] >= 0 and timings["inference_ms"] > 0
        assert timings["total_ms"] >= timings["inference_ms"]
        assert done["finished_at"] >= done["started_at"] >= done["created_at"]

    def test_regressor_floats_and_string_labels(self, client, user, tmp_path):
        reg = fit_regressor()
        meta = upload_ready(client, user, reg, tmp_path, name="reg")
        rows = [[0.5, -1.0, 2.0], [1, 2, 3]]
        job = _poll(
            client, user, _submit(client, user, meta["id"], {"inputs": rows}).json["id"]
        ).json
        np.testing.assert_allclose(
            job["result"]["predictions"], reg.predict(np.array(rows, dtype=float))
        )
        assert all(isinstance(v, float) for v in job["result"]["predictions"])
        labels = fit_string_labels()
        meta = upload_ready(client, user, labels, tmp_path, name="labels")
        job = _poll(
            client, user, _submit(client, user, meta["id"], {"inputs": ROWS}).json["id"]
        ).json
        assert job["result"]["predictions"] == labels.predict(np.array(ROWS)).tolist()
        assert all(isinstance(v, str) for v in job["result"]["predictions"])

    def test_named_features_are_reordered(self, client, user, tmp_path):
        pipe = fit_frame_pipeline()
        meta = upload_ready(client, user, pipe, tmp_path, name="pipe")
        objects = [dict(reversed(list(zip(FEATURES, row, strict=True)))) for row in ROWS]
        job = _poll(
            client, user, _submit(client, user, meta["id"], {"inputs": objects}).json["id"]
        ).json
        expected = pipe.predict(pd.DataFrame(ROWS, columns=FEATURES)).tolist()
        assert job["result"]["predictions"] == expected

    def test_sync_predict(self, client, user, tmp_path):
        model = fit_classifier()
        meta = upload_ready(client, user, model, tmp_path)
        resp = client.post(
            f"/api/v1/models/{meta['id']}/predict?timeout=10",
            json={"inputs": ROWS},
            headers=user.headers,
        )
        assert resp.status_code == 200
        assert resp.json["status"] == "succeeded"
        assert resp.json["result"]["predictions"] == model.predict(np.array(ROWS)).tolist()

    def test_sync_predict_is_in_the_history(self, client, user, tmp_path):
        """A sync predict's row is written by the worker with its result: the same job is
        there to GET and to list afterwards."""
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        answer = client.post(
            f"/api/v1/models/{meta['id']}/predict", json={"inputs": ROWS}, headers=user.headers
        ).json
        stored = client.get(f"/api/v1/jobs/{answer['id']}", headers=user.headers).json
        assert stored == answer
        listed = client.get(f"/api/v1/jobs?model_id={meta['id']}", headers=user.headers).json
        assert [j["id"] for j in listed["items"]] == [answer["id"]]

    def test_sync_predict_with_idempotency_key_replays(self, client, user, tmp_path):
        """With an Idempotency-Key the row is written first (the durable path), so a retry
        answers the same job."""
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        url, key = f"/api/v1/models/{meta['id']}/predict", {"Idempotency-Key": "sync-1"}
        first = client.post(url, json={"inputs": ROWS}, headers={**user.headers, **key})
        again = client.post(url, json={"inputs": ROWS}, headers={**user.headers, **key})
        assert first.status_code == again.status_code == 200
        assert again.json["id"] == first.json["id"] and again.json == first.json

    def test_disabled_model_is_refused_at_once_by_every_process(self, client, user, tmp_path):
        """Servable models are cached per process; disabling one elsewhere still takes effect
        on the very next prediction (the shared epoch invalidates the cache)."""
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        url = f"/api/v1/models/{meta['id']}/predict"
        assert client.post(url, json={"inputs": ROWS}, headers=user.headers).status_code == 200
        other = create_app().test_client()
        off = other.patch(
            f"/api/v1/models/{meta['id']}", json={"status": "disabled"}, headers=user.headers
        )
        assert off.status_code == 200
        assert client.post(url, json={"inputs": ROWS}, headers=user.headers).status_code == 409

    def test_prediction_routes_see_a_revoked_key_and_a_disabled_model_at_once(
        self, client, user, tmp_path
    ):
        """The prediction routes trust cached keys and models under the epoch their process saw
        last and have it checked when they act (push, capacity read): a change made through
        another process still takes effect on the very next call, before anything is queued or
        written, and a call refused before its check is decided again if the epoch moved."""
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        other = create_app().test_client()  # another process: it bumps the epoch, not `client`
        predict = f"/api/v1/models/{meta['id']}/predict"
        jobs = f"/api/v1/models/{meta['id']}/jobs"

        def cached_then_revoked() -> dict:
            """A key this process resolved (under the epoch it saw last), then revoked by the
            other process, which moves the epoch without this one knowing."""
            created = create_api_key(client, user)
            headers = {"X-API-Key": created["key"]}
            assert client.post(predict, json={"inputs": ROWS}, headers=headers).status_code == 200
            resp = other.patch(f"/api/v1/api-keys/{created['id']}", json={"is_active": False},
                               headers=user.headers)  # fmt: skip
            assert resp.status_code == 200
            return headers

        body, bad_rows = {"inputs": ROWS}, {"inputs": [[1.0]]}
        assert client.post(predict, json=body, headers=cached_then_revoked()).status_code == 401
        assert client.post(jobs, json=body, headers=cached_then_revoked()).status_code == 401
        # Refused (422) before any check, unless decided again under the moved epoch.
        assert client.post(predict, json=bad_rows, headers=cached_then_revoked()).status_code == 401
        assert client.post(predict, json=body, headers=user.headers).status_code == 200
        off = other.patch(f"/api/v1/models/{meta['id']}", json={"status": "disabled"},
                          headers=user.headers)  # fmt: skip
        assert off.status_code == 200
        assert client.post(predict, json={"inputs": ROWS}, headers=user.headers).status_code == 409
        assert client.post(jobs, json={"inputs": ROWS}, headers=user.headers).status_code == 409
        assert _job_count() == 4

    def test_a_moved_epoch_costs_a_retry_not_a_duplicate(self, client, user, tmp_path):
        """The epoch moves for a change that does not concern this call: the push finds it
        stale, nothing was queued, and the call is decided again and answered once."""
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        predict = f"/api/v1/models/{meta['id']}/predict"
        first = client.post(predict, json={"inputs": ROWS}, headers=user.headers)
        cache_epoch.bump(get_redis())
        again = client.post(predict, json={"inputs": ROWS}, headers=user.headers)
        assert first.status_code == again.status_code == 200
        assert again.json["result"] == first.json["result"]
        cache_epoch.bump(get_redis())
        submitted = _submit(client, user, meta["id"], {"inputs": ROWS})
        assert submitted.status_code == 202
        assert _poll(client, user, submitted.json["id"]).json["status"] == "succeeded"
        assert _job_count() == 3

    def test_second_job_hits_the_cache(self, client, user, tmp_path):
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        url = f"/api/v1/models/{meta['id']}/predict"
        hits = []
        for _ in range(4):  # prefork: up to two children may each load it once
            hits.append(
                client.post(url, json={"inputs": ROWS[:1]}, headers=user.headers).json["cache_hit"]
            )
        assert hits[0] is False
        assert True in hits

    def test_cancel_after_finish_is_409(self, client, user, tmp_path):
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        job = client.post(
            f"/api/v1/models/{meta['id']}/predict", json={"inputs": ROWS}, headers=user.headers
        ).json
        resp = client.delete(f"/api/v1/jobs/{job['id']}", headers=user.headers)
        assert resp.status_code == 409
        assert resp.json["error"]["code"] == "job_finished"

    def test_idempotency(self, client, user, tmp_path):
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        first = _submit(client, user, meta["id"], {"inputs": ROWS}, **{"Idempotency-Key": "k1"})
        again = _submit(client, user, meta["id"], {"inputs": ROWS}, **{"Idempotency-Key": "k1"})
        assert first.status_code == 202 and again.status_code in (200, 202)
        assert again.json["id"] == first.json["id"]
        other = _submit(client, user, meta["id"], {"inputs": ROWS[:1]}, **{"Idempotency-Key": "k1"})
        assert other.status_code == 409
        assert other.json["error"]["code"] == "idempotency_conflict"
        assert _job_count() == 1

    def test_history_lists_newest_first_with_filters(self, client, user, tmp_path):
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        ids = [_submit(client, user, meta["id"], {"inputs": ROWS[:1]}).json["id"] for _ in range(3)]
        for job_id in ids:
            _poll(client, user, job_id)
        page = client.get(
            f"/api/v1/jobs?model_id={meta['id']}&per_page=2", headers=user.headers
        ).json
        assert page["total"] == 3
        assert [j["id"] for j in page["items"]] == ids[::-1][:2]
        assert client.get("/api/v1/jobs?status=failed", headers=user.headers).json["total"] == 0
        assert client.get("/api/v1/jobs?per_page=101", headers=user.headers).status_code == 422

    def test_disabled_model_refuses_and_other_users_get_404(
        self, client, user, other_user, tmp_path
    ):
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        assert _submit(client, other_user, meta["id"], {"inputs": ROWS}).status_code == 404
        client.patch(
            f"/api/v1/models/{meta['id']}", json={"status": "disabled"}, headers=user.headers
        )
        resp = _submit(client, user, meta["id"], {"inputs": ROWS})
        assert resp.status_code == 409
        client.delete(f"/api/v1/models/{meta['id']}", headers=user.headers)
        assert _submit(client, user, meta["id"], {"inputs": ROWS}).status_code == 404
        assert _job_count() == 0

    def test_job_of_other_user_is_404(self, client, user, other_user, tmp_path):
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        job_id = _submit(client, user, meta["id"], {"inputs": ROWS}).json["id"]
        assert client.get(f"/api/v1/jobs/{job_id}", headers=other_user.headers).status_code == 404
        assert (
            client.delete(f"/api/v1/jobs/{job_id}", headers=other_user.headers).status_code == 404
        )


BAD_INPUTS = {
    "no rows": {"inputs": []},
    "wrong feature count": {"inputs": [[1, 2, 3]]},
    "string value": {"inputs": [[1, 2, "x", 4]]},
    "boolean value": {"inputs": [[1, 2, True, 4]]},
    "null value": {"inputs": [[1, 2, None, 4]]},
    "nested list": {"inputs": [[1, 2, [3], 4]]},
    "objects without feature names": {"inputs": [{"a": 1}]},
    "not a list": {"inputs": "1,2,3,4"},
    "rows of numbers, not lists": {"inputs": [1, 2, 3, 4]},
    "row as a string": {"inputs": ["1,2,3,4"]},
    "row null": {"inputs": [None]},
    "unknown field": {"inputs": [[1, 2, 3, 4]], "extra": 1},
    "probabilities of a model without": None,  # filled in the test (regressor)
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_are_422_and_create_nothing(client, user, tmp_path, case):
    from shared.db import session_scope as scope
    from shared.models import MLModel

    model = fit_regressor() if case.startswith("probabilities") else fit_classifier()
    # Registered directly as ready: edge validation needs no worker.
    meta = insert_ready_model(user, model, tmp_path)
    body = BAD_INPUTS[case] or {"inputs": [[1, 2, 3]], "return_probabilities": True}
    resp = _submit(client, user, meta, body)
    assert resp.status_code == 422, resp.json
    assert resp.json["error"]["code"] in ("validation_error", "invalid_input")
    assert _job_count() == 0
    with scope() as s:
        assert s.get(MLModel, meta) is not None


def test_nan_and_infinity_are_422(client, user, tmp_path):
    meta = insert_ready_model(user, fit_classifier(), tmp_path)
    for literal in ("NaN", "Infinity", "-Infinity"):
        resp = client.post(
            f"/api/v1/models/{meta}/jobs",
            data=f'{{"inputs": [[1, 2, 3, {literal}]]}}',
            content_type="application/json",
            headers=user.headers,
        )
        assert resp.status_code in (400, 422)
    assert _job_count() == 0


def test_too_many_rows_is_422(client, user, tmp_path, monkeypatch):
    meta = insert_ready_model(user, fit_classifier(), tmp_path)
    monkeypatch.setattr(client.application.extensions["mlsp_settings"], "max_rows_per_request", 3)
    assert _submit(client, user, meta, {"inputs": ROWS[:4]}).status_code == 422
    assert _job_count() == 0


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
        done = _poll(client, user, resp.json["id"], wait=20).json
    # Both its rows (the inline entry) and its id were queued: one result, one attempt.
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert _job_count() == 1


def test_sync_predict_cancelled_after_202_never_gets_a_result(private_queue, user, tmp_path):
    client = private_queue.client
    meta = insert_ready_model(user, fit_classifier(), tmp_path)
    resp = client.post(
        f"/api/v1/models/{meta}/predict?timeout=0.2", json={"inputs": ROWS}, headers=user.headers
    )
    assert resp.status_code == 202
    assert client.delete(f"/api/v1/jobs/{resp.json['id']}", headers=user.headers).status_code == 200
    follow = _submit(client, user, meta, {"inputs": ROWS}).json["id"]
    with private_queue.worker():
        assert _poll(client, user, follow, wait=20).json["status"] == "succeeded"
    job = _poll(client, user, resp.json["id"], wait=0).json
    assert job["status"] == "cancelled" and job["result"] is None


def test_full_queue_refuses_sync_predict_without_a_trace(user, tmp_path):
    """Past MAX_QUEUE_DEPTH a sync predict is a 429 and leaves nothing behind."""
    full = isolated(MAX_QUEUE_DEPTH=1)
    meta = insert_ready_model(user, fit_classifier(), tmp_path)
    assert _submit(full.client, user, meta, {"inputs": ROWS}).status_code == 202  # depth 1 now
    resp = full.client.post(
        f"/api/v1/models/{meta}/predict?timeout=1", json={"inputs": ROWS}, headers=user.headers
    )
    assert resp.status_code == 429 and resp.json["error"]["code"] == "queue_full"
    assert resp.headers["Retry-After"]
    assert _job_count() == 1


def test_cancel_before_pickup_never_runs(private_queue, user, tmp_path):
    client = private_queue.client
    meta = insert_ready_model(user, fit_classifier(), tmp_path)
    job_id = _submit(client, user, meta, {"inputs": ROWS}).json["id"]
    resp = client.delete(f"/api/v1/jobs/{job_id}", headers=user.headers)
    assert resp.status_code == 200
    assert resp.json["status"] == "cancelled"
    follow = _submit(client, user, meta, {"inputs": ROWS}).json["id"]
    with private_queue.worker():
        assert _poll(client, user, follow, wait=20).json["status"] == "succeeded"
    job = _poll(client, user, job_id, wait=0).json
    assert job["status"] == "cancelled"
    assert job["started_at"] is None and job["result"] is None


def test_long_poll_returns_when_job_finishes(private_queue, user, tmp_path):
    client = private_queue.client
    meta = insert_ready_model(user, fit_classifier(), tmp_path)
    job_id = _submit(client, user, meta, {"inputs": ROWS}).json["id"]
    quick = _poll(client, user, job_id, wait=0.2).json
    assert quick["status"] == "queued"
    with private_queue.worker():
        started = time.monotonic()
        done = _poll(client, user, job_id, wait=30).json
        assert done["status"] == "succeeded"
        assert time.monotonic() - started < 25


def test_idempotency_key_is_free_again_after_24_hours(private_queue, user, tmp_path):
    client = private_queue.client
    meta = insert_ready_model(user, fit_classifier(), tmp_path)
    key = {"Idempotency-Key": "daily-1"}
    first = _submit(client, user, meta, {"inputs": ROWS}, **key).json["id"]
    with session_scope() as s:
        s.execute(
            update(Job).where(Job.id == first).values(created_at=func.now() - timedelta(hours=25))
        )
    again = _submit(client, user, meta, {"inputs": ROWS[:1]}, **key)
    assert again.status_code == 202 and again.json["id"] != first
    replay = _submit(client, user, meta, {"inputs": ROWS[:1]}, **key)
    assert replay.json["id"] == again.json["id"]
