"""Issue 18, findings 9 (web half) and 11: query strings and fields that answered 500.

Timeouts are finite numbers >= 0 wherever a client sets one; names and versions PostgreSQL
cannot compare (a NUL byte) or int() cannot read (`²`) are simply not found; a deeply nested
upload `sample` is a 422, not a RecursionError.
"""

from __future__ import annotations

import pytest

from tests.fixtures.models import dump, fit_classifier, insert_ready_model, upload

ROW = [5.1, 3.5, 1.4, 0.2]
INFER = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW}]}
NOT_FINITE = ("nan", "inf", "-inf", "-1", "1e999", "soon")


@pytest.fixture
def model_id(user, tmp_path) -> str:
    return insert_ready_model(user, fit_classifier(), tmp_path, name="iris")


def test_oip_timeout_must_be_finite(client, user, model_id):
    """`?timeout=nan` was a 500 (and queued an entry with a NaN deadline)."""
    for value in NOT_FINITE:
        resp = client.post(
            f"/v2/models/iris/infer?timeout={value}", json=INFER, headers=user.headers
        )
        assert resp.status_code == 400, (value, resp.status_code)
        assert "timeout" in resp.json["error"]
    body = {**INFER, "parameters": {"timeout": -5}}
    assert client.post("/v2/models/iris/infer", json=body, headers=user.headers).status_code == 400


def test_rest_timeouts_must_be_finite(client, user, model_id):
    for value in NOT_FINITE:
        predict = client.post(
            f"/api/v1/models/{model_id}/predict?timeout={value}",
            json={"inputs": [ROW]},
            headers=user.headers,
        )
        poll = client.get(f"/api/v1/jobs/{model_id}?wait={value}", headers=user.headers)
        assert (predict.status_code, poll.status_code) == (422, 422), value


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/iris/versions/{version}",
        "/v2/models/iris/versions/{version}/ready",
        "/v2/models/{name}/versions/1",
    ],
)
def test_oip_names_and_versions_that_cannot_exist_are_not_found(client, user, model_id, path):
    for name, version in (("a%00b", "%C2%B2"), ("iris%00", "1%00"), ("x" * 300, "9" * 30)):
        resp = client.get(path.format(name=name, version=version), headers=user.headers)
        assert resp.status_code == 404, (path, name, version, resp.status_code)
        assert isinstance(resp.json["error"], str)
    infer = client.post("/v2/models/a%00b/versions/%C2%B2/infer", json=INFER, headers=user.headers)
    assert infer.status_code == 404


def test_nul_in_idempotency_key_is_refused(client, user, model_id):
    resp = client.post(
        f"/api/v1/models/{model_id}/jobs",
        json={"inputs": [ROW]},
        headers={**user.headers, "Idempotency-Key": "a\x00b"},
    )
    assert resp.status_code == 422 and resp.json["error"]["code"] == "invalid_header"
    listed = client.get("/api/v1/models?name=a%00b", headers=user.headers)
    assert listed.status_code == 422


def test_deep_or_nested_upload_sample_is_a_422(client, user, tmp_path):
    """A 2,000-deep sample was a RecursionError (500); rows hold plain values only."""
    path = dump(fit_classifier(), tmp_path / "m.joblib")
    for sample in ("[" * 2000 + "]" * 2000, f"[{'[' * 500}1{']' * 500}]", "[[1, NaN, 2, 3]]"):
        resp = upload(client, user, path, sample=sample)
        assert resp.status_code == 422, (sample[:20], resp.status_code)
        assert resp.json["error"]["details"]["field"] == "sample"
