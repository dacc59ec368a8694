"""Compiled inference end to end: upload -> runtime chosen by validation -> predict -> compare."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from shared.db import session_scope
from shared.models import MLModel
from tests.conftest import store_dir
from tests.fixtures import zoo
from tests.fixtures.models import upload, upload_ready

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker")]
ATOL = 1e-6  # ONNX_PROBA_ATOL's default


def _predict(client, account, model_id, rows, proba=True) -> dict:
    resp = client.post(
        f"/api/v1/models/{model_id}/predict?timeout=30",
        json={"inputs": rows, "return_probabilities": proba},
        headers=account.headers,
    )
    assert resp.status_code == 200, resp.json
    assert resp.json["status"] == "succeeded", resp.json
    return resp.json


def _local_input(model, rows: np.ndarray):
    names = getattr(model, "feature_names_in_", None)
    return rows if names is None else pd.DataFrame(rows, columns=list(names))


@pytest.mark.parametrize("name", sorted(zoo.CLASSIFIERS))
def test_classifier_is_served_by_onnx_with_sklearn_answers(client, user, tmp_path, name):
    model = zoo.CLASSIFIERS[name]()
    meta = upload_ready(client, user, model, tmp_path, name=name)
    assert meta["runtime"] == "onnx", meta["runtime_reason"]
    assert "matches scikit-learn" in meta["runtime_reason"]
    rows = zoo.probe_inputs()
    job = _predict(client, user, meta["id"], rows.tolist())
    assert job["runtime"] == "onnx"
    local = _local_input(model, rows)
    assert job["result"]["predictions"] == model.predict(local).tolist()
    assert job["result"]["classes"] == model.classes_.tolist()
    np.testing.assert_allclose(
        job["result"]["probabilities"], model.predict_proba(local), atol=ATOL, rtol=0
    )


def test_big_call_goes_to_sklearn_with_the_same_answers(client, user, tmp_path):
    """Past ONNX_MAX_BATCH_ROWS (5,000) a compiled model is run by scikit-learn."""
    name = sorted(zoo.CLASSIFIERS)[0]
    model = zoo.CLASSIFIERS[name]()
    meta = upload_ready(client, user, model, tmp_path, name=name)
    rows = np.random.default_rng(7).normal(size=(6000, zoo.N_FEATURES))
    job = _predict(client, user, meta["id"], rows.tolist(), proba=False)
    assert meta["runtime"] == "onnx" and job["runtime"] == "sklearn"
    assert job["result"]["predictions"] == model.predict(_local_input(model, rows)).tolist()


@pytest.mark.parametrize("name", sorted(zoo.REGRESSORS))
def test_regressor_is_served_by_onnx_or_says_why(client, user, tmp_path, name):
    model = zoo.REGRESSORS[name]()
    meta = upload_ready(client, user, model, tmp_path, name=name)
    rows = np.random.default_rng(5).normal(size=(30, zoo.N_FEATURES))
    job = _predict(client, user, meta["id"], rows.tolist(), proba=False)
    assert job["runtime"] == meta["runtime"]
    expected = model.predict(rows)
    if meta["runtime"] == "sklearn":  # float tree sums may miss the default tolerance
        assert "ONNX_REGRESSION_RTOL" in meta["runtime_reason"]
        np.testing.assert_array_equal(job["result"]["predictions"], expected)
        return
    scale = np.abs(expected).max()
    assert np.abs(np.asarray(job["result"]["predictions"]) - expected).max() <= 1e-6 * scale


def test_compiled_artifact_is_stored_with_its_own_hash(client, user, tmp_path):
    meta = upload_ready(client, user, zoo.CLASSIFIERS["logistic_regression"](), tmp_path)
    onnx_file = store_dir() / f"{meta['id']}.onnx"
    digest = hashlib.sha256(onnx_file.read_bytes()).hexdigest()
    assert meta["info"]["onnx"]["sha256"] == digest != meta["sha256"]
    with session_scope() as s:
        row = s.get(MLModel, meta["id"])
        assert (row.onnx_key, row.onnx_sha256) == (onnx_file.name, digest)
        assert row.onnx_size_bytes == onnx_file.stat().st_size


def test_unconvertible_model_falls_back_with_reason(client, user, tmp_path):
    from sklearn.dummy import DummyClassifier

    x, y = zoo.classification()
    model = DummyClassifier(strategy="prior").fit(x, y)
    meta = upload_ready(client, user, model, tmp_path, name="dummy")
    assert meta["runtime"] == "sklearn"
    assert "DummyClassifier" in meta["runtime_reason"]
    assert meta["info"]["onnx"]["status"] == "fallback"
    job = _predict(client, user, meta["id"], x[:3].tolist())
    assert job["runtime"] == "sklearn"
    assert job["result"]["predictions"] == model.predict(x[:3]).tolist()


def test_patch_runtime_takes_effect_on_the_next_job(client, user, tmp_path):
    model = zoo.CLASSIFIERS["logistic_regression"]()
    meta = upload_ready(client, user, model, tmp_path)
    rows = zoo.probe_inputs(3).tolist()
    assert _predict(client, user, meta["id"], rows)["runtime"] == "onnx"
    url = f"/api/v1/models/{meta['id']}"
    forced = client.patch(url, json={"runtime": "sklearn"}, headers=user.headers).json
    assert forced["runtime"] == "sklearn"
    assert "forced" in forced["runtime_reason"]
    job = _predict(client, user, meta["id"], rows)
    assert job["runtime"] == "sklearn"
    assert job["result"]["predictions"] == model.predict(np.asarray(rows)).tolist()
    back = client.patch(url, json={"runtime": "auto"}, headers=user.headers).json
    assert back["runtime"] == "onnx"
    assert _predict(client, user, meta["id"], rows)["runtime"] == "onnx"


def test_onnx_upload_predicts(client, user, tmp_path):
    model = zoo.CLASSIFIERS["forest_string_labels"]()
    path = zoo.to_onnx_file(model, tmp_path / "forest.onnx")  # with ZipMap, float input
    resp = upload(client, user, path, name="forest", sample=zoo.probe_inputs(5).tolist())
    assert resp.status_code == 201, resp.json
    meta = resp.json
    assert meta["status"] == "ready", meta
    assert (meta["format"], meta["framework"], meta["runtime"]) == ("onnx", "onnx", "onnx")
    schema = meta["input_schema"]
    assert (schema["n_features"], schema["feature_names"]) == (zoo.N_FEATURES, None)
    # A forest graph routes a missing value down its trees: it takes nulls.
    assert schema["columns"][0] == {
        "name": "x0",
        "dtype": "number",
        "nullable": True,
        "categories": None,
    }
    assert meta["output_schema"] == {
        "task": "classification",
        "classes": ["high", "low", "mid"],
        "has_proba": True,
        "has_scores": False,
    }
    rows = zoo.probe_inputs()
    job = _predict(client, user, meta["id"], rows.tolist())
    assert job["runtime"] == "onnx"
    assert job["result"]["predictions"] == model.predict(rows).tolist()
    assert job["result"]["classes"] == ["high", "low", "mid"]
    np.testing.assert_allclose(
        job["result"]["probabilities"], model.predict_proba(rows), atol=1e-5, rtol=0
    )
    resp = client.patch(
        f"/api/v1/models/{meta['id']}", json={"runtime": "sklearn"}, headers=user.headers
    )
    assert resp.status_code == 409


@pytest.mark.parametrize(
    ("maker", "message"),
    [
        (zoo.custom_domain_onnx, "custom operator domains"),
        (zoo.external_data_onnx, "external data"),
    ],
    ids=["custom_domain", "external_data"],
)
def test_bad_onnx_graph_fails_validation_in_the_sandbox(client, user, tmp_path, maker, message):
    """The web tier never parses a graph (a 10 MB file expands ~100x in protobuf objects): the
    sandbox does, and the upload ends failed, readable by its id, with nothing compiled."""
    resp = upload(client, user, maker(tmp_path / "bad.onnx"), name="bad")
    assert resp.status_code == 422 and resp.json["error"]["code"] == "invalid_model", resp.json
    model_id = resp.json["error"]["details"]["model_id"]
    model = client.get(f"/api/v1/models/{model_id}", headers=user.headers).json
    assert model["status"] == "failed" and message in model["error"]


def test_file_that_is_not_onnx_is_refused_before_anything_is_stored(client, user, tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"this is not protobuf")
    before = set(os.listdir(store_dir()))
    resp = upload(client, user, path, name="bad")
    assert resp.status_code == 415, resp.json
    assert resp.json["error"]["code"] == "unsupported_format"
    assert set(os.listdir(store_dir())) == before
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(MLModel)) == 0
