"""Model registry end to end (web/registry/routes.py): web + a real worker validating uploads."""

from __future__ import annotations

import os
import pickle
import uuid

import pytest
import skops.io as sio

from shared.db import session_scope
from shared.models import MLModel
from tests.conftest import store_dir
from tests.fixtures.models import (
    FEATURES,
    dump,
    fit_classifier,
    fit_frame_pipeline,
    fit_regressor,
    fit_string_labels,
    upload,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker")]


def _invalid(client, user, path):
    """The 422 invalid_model of a failed upload, and the failed record it points to."""
    resp = upload(client, user, path)
    assert resp.status_code == 422, resp.json
    error = resp.json["error"]
    assert error["code"] == "invalid_model" and error["message"].startswith("model failed")
    model = client.get(f"/api/v1/models/{error['details']['model_id']}", headers=user.headers)
    assert model.status_code == 200
    return model.json


class _Payload:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_upload_logistic_regression(client, user, classifier_file):
    resp = upload(client, user, classifier_file, description="iris v1")
    assert resp.status_code == 201, resp.json
    body = resp.json
    assert body["status"] == "ready"
    assert body["version"] == 1
    assert body["format"] == "joblib"
    assert body["input_schema"] == {
        "n_features": 4,
        "feature_names": None,
        "columns": [
            {"name": f"x{i}", "dtype": "number", "nullable": False, "categories": None}
            for i in range(4)
        ],
    }
    assert body["output_schema"] == {
        "task": "classification",
        "classes": [0, 1, 2],
        "has_proba": True,
        "has_scores": False,
    }
    assert body["info"]["estimator"].endswith("LogisticRegression")
    assert len(body["sha256"]) == 64
    assert body["size_bytes"] == classifier_file.stat().st_size
    # Stored under a generated name, never the client's.
    assert f"{body['id']}.joblib" in os.listdir(store_dir())


def test_upload_regressor_and_string_labels(client, user, tmp_path):
    reg = upload(client, user, dump(fit_regressor(), tmp_path / "r.joblib"), name="reg").json
    assert reg["output_schema"] == {
        "task": "regression",
        "classes": None,
        "has_proba": False,
        "has_scores": False,
    }
    labels = upload(client, user, dump(fit_string_labels(), tmp_path / "s.joblib"), name="s").json
    assert labels["output_schema"]["classes"] == ["setosa", "versicolor", "virginica"]


def test_upload_dataframe_pipeline_records_feature_names(client, user, tmp_path):
    body = upload(client, user, dump(fit_frame_pipeline(), tmp_path / "p.joblib", compress=3)).json
    assert body["status"] == "ready"
    assert body["input_schema"]["feature_names"] == FEATURES
    assert [c["name"] for c in body["input_schema"]["columns"]] == FEATURES
    assert [s["name"] for s in body["info"]["steps"]] == ["scale", "clf"]


def test_upload_skops(client, user, tmp_path):
    path = tmp_path / "m.skops"
    sio.dump(fit_classifier(), path)
    body = upload(client, user, path).json
    assert body["format"] == "skops"
    assert body["status"] == "ready"


def test_truncated_joblib_fails_validation(client, user, classifier_file, tmp_path):
    data = classifier_file.read_bytes()
    path = tmp_path / "cut.joblib"
    path.write_bytes(data[: len(data) // 2])
    body = _invalid(client, user, path)
    assert body["status"] == "failed"
    assert body["error"]


def test_reduce_payload_never_runs(client, user, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Payload(str(marker)), protocol=4))
    body = _invalid(client, user, path)
    assert body["status"] == "failed"
    assert "builtins" in body["error"] or "io" in body["error"]
    assert not marker.exists()


@pytest.mark.parametrize("name", ["", "a/b", "../x", "x" * 101, "has space"])
def test_bad_names_are_422(client, user, classifier_file, name):
    assert upload(client, user, classifier_file, name=name).status_code == 422


def test_pagination_filters_and_bounds(client, user, classifier_file):
    for name in ("a", "b", "a"):
        upload(client, user, classifier_file, name=name)
    page = client.get("/api/v1/models?per_page=2&page=1", headers=user.headers).json
    assert page["total"] == 3
    assert len(page["items"]) == 2
    assert page["items"][0]["name"] == "a" and page["items"][0]["version"] == 2  # newest first
    only_a = client.get("/api/v1/models?name=a", headers=user.headers).json
    assert {m["name"] for m in only_a["items"]} == {"a"}
    ready = client.get("/api/v1/models?status=failed", headers=user.headers).json
    assert ready["total"] == 0
    for bad in ("per_page=0", "per_page=101", "page=0", "status=bogus"):
        assert client.get(f"/api/v1/models?{bad}", headers=user.headers).status_code == 422


def test_patch_and_soft_delete(client, user, classifier_file):
    model = upload(client, user, classifier_file).json
    url = f"/api/v1/models/{model['id']}"
    patched = client.patch(
        url, json={"description": "new", "status": "disabled"}, headers=user.headers
    )
    assert patched.status_code == 200
    assert patched.json["status"] == "disabled" and patched.json["description"] == "new"
    assert client.patch(url, json={"status": "validating"}, headers=user.headers).status_code == 422
    assert client.delete(url, headers=user.headers).status_code == 204
    assert client.get(url, headers=user.headers).status_code == 404
    assert client.get("/api/v1/models", headers=user.headers).json["total"] == 0
    with session_scope() as s:  # history kept: the row is still there
        assert s.get(MLModel, uuid.UUID(model["id"])).deleted_at is not None


def test_other_users_model_is_404(client, user, other_user, classifier_file):
    model = upload(client, user, classifier_file).json
    assert (
        client.get(f"/api/v1/models/{model['id']}", headers=other_user.headers).status_code == 404
    )
