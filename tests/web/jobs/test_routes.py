"""The prediction endpoints end to end (web/jobs/routes.py): web + real worker processes +
PostgreSQL + Redis; inputs refused at the edge create nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.fixtures.models import (
    FEATURES,
    fit_classifier,
    fit_frame_pipeline,
    fit_regressor,
    fit_string_labels,
    insert_ready_model,
    upload_ready,
)
from tests.web.jobs.calls import ROWS, job_count, poll, submit
from web import extensions

pytestmark = [pytest.mark.e2e]

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


@pytest.mark.usefixtures("worker")
class TestWithWorker:
    def test_async_classifier_matches_local_model(self, client, user, tmp_path):
        model = fit_classifier()
        meta = upload_ready(client, user, model, tmp_path)
        resp = submit(client, user, meta["id"], {"inputs": ROWS, "return_probabilities": True})
        assert resp.status_code == 202
        assert resp.headers["Location"] == f"/api/v1/jobs/{resp.json['id']}"
        assert resp.json["status"] == "queued"
        done = poll(client, user, resp.json["id"]).json
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
        job = poll(client, user, submit(client, user, meta["id"], {"inputs": rows}).json["id"]).json
        np.testing.assert_allclose(
            job["result"]["predictions"], reg.predict(np.array(rows, dtype=float))
        )
        assert all(isinstance(v, float) for v in job["result"]["predictions"])
        labels = fit_string_labels()
        meta = upload_ready(client, user, labels, tmp_path, name="labels")
        job = poll(client, user, submit(client, user, meta["id"], {"inputs": ROWS}).json["id"]).json
        assert job["result"]["predictions"] == labels.predict(np.array(ROWS)).tolist()
        assert all(isinstance(v, str) for v in job["result"]["predictions"])

    def test_named_features_are_reordered(self, client, user, tmp_path):
        pipe = fit_frame_pipeline()
        meta = upload_ready(client, user, pipe, tmp_path, name="pipe")
        objects = [dict(reversed(list(zip(FEATURES, row, strict=True)))) for row in ROWS]
        job = poll(
            client, user, submit(client, user, meta["id"], {"inputs": objects}).json["id"]
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

    def test_sync_predict_past_the_inline_limit(self, client, user, tmp_path, monkeypatch):
        """Too many rows to travel inline: the row is written first and the worker answers
        the waiter with the job as it wrote it, the same object a GET reads back."""
        with client.application.app_context():
            monkeypatch.setattr(extensions.settings(), "sync_inline_max_rows", 3)
        model = fit_classifier()
        meta = upload_ready(client, user, model, tmp_path)
        answer = client.post(
            f"/api/v1/models/{meta['id']}/predict?timeout=10",
            json={"inputs": ROWS, "return_probabilities": True},
            headers=user.headers,
        ).json
        assert answer["status"] == "succeeded"
        assert answer["result"]["predictions"] == model.predict(np.array(ROWS)).tolist()
        assert client.get(f"/api/v1/jobs/{answer['id']}", headers=user.headers).json == answer
        again = client.get(f"/api/v1/jobs/{answer['id']}?wait=5", headers=user.headers).json
        assert again == answer

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

    def test_history_lists_newest_first_with_filters(self, client, user, tmp_path):
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        ids = [submit(client, user, meta["id"], {"inputs": ROWS[:1]}).json["id"] for _ in range(3)]
        for job_id in ids:
            poll(client, user, job_id)
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
        assert submit(client, other_user, meta["id"], {"inputs": ROWS}).status_code == 404
        client.patch(
            f"/api/v1/models/{meta['id']}", json={"status": "disabled"}, headers=user.headers
        )
        resp = submit(client, user, meta["id"], {"inputs": ROWS})
        assert resp.status_code == 409
        client.delete(f"/api/v1/models/{meta['id']}", headers=user.headers)
        assert submit(client, user, meta["id"], {"inputs": ROWS}).status_code == 404
        assert job_count() == 0

    def test_job_of_other_user_is_404(self, client, user, other_user, tmp_path):
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        job_id = submit(client, user, meta["id"], {"inputs": ROWS}).json["id"]
        assert client.get(f"/api/v1/jobs/{job_id}", headers=other_user.headers).status_code == 404
        assert (
            client.delete(f"/api/v1/jobs/{job_id}", headers=other_user.headers).status_code == 404
        )


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_are_422_and_create_nothing(client, user, tmp_path, case):
    from shared.db import session_scope as scope
    from shared.models import MLModel

    model = fit_regressor() if case.startswith("probabilities") else fit_classifier()
    # Registered directly as ready: edge validation needs no worker.
    meta = insert_ready_model(user, model, tmp_path)
    body = BAD_INPUTS[case] or {"inputs": [[1, 2, 3]], "return_probabilities": True}
    resp = submit(client, user, meta, body)
    assert resp.status_code == 422, resp.json
    assert resp.json["error"]["code"] in ("validation_error", "invalid_input")
    assert job_count() == 0
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
    assert job_count() == 0


def test_too_many_rows_is_422(client, user, tmp_path, monkeypatch):
    meta = insert_ready_model(user, fit_classifier(), tmp_path)
    with client.application.app_context():
        monkeypatch.setattr(extensions.settings(), "max_rows_per_request", 3)
    assert submit(client, user, meta, {"inputs": ROWS[:4]}).status_code == 422
    assert job_count() == 0
