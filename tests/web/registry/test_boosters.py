"""XGBoost and LightGBM end to end, both ways users save them: uploaded through the API, validated
and predicted by a real worker, and compared with the local model on held-out rows (labels equal,
numbers within 1e-6 relative). CatBoost and other unknown files are refused with what to do."""

from __future__ import annotations

import joblib
import numpy as np
import pytest

from tests.fixtures import boosters
from tests.fixtures.models import upload

RTOL = 1e-6


def _ready(client, account, path, name: str) -> dict:
    resp = upload(client, account, path, name=name)
    assert resp.status_code == 201, resp.json
    assert resp.json["status"] == "ready", resp.json
    return resp.json


def _predict(client, account, meta: dict, rows: np.ndarray) -> dict:
    proba = bool(meta["output_schema"]["has_proba"])
    resp = client.post(
        f"/api/v1/models/{meta['id']}/predict?timeout=30",
        json={"inputs": rows.tolist(), "return_probabilities": proba},
        headers=account.headers,
    )
    assert resp.status_code == 200, resp.json
    assert resp.json["status"] == "succeeded", resp.json
    assert resp.json["runtime"] == meta["runtime"]
    return resp.json["result"]


def _assert_local_answers(result: dict, model, rows: np.ndarray) -> None:
    local = boosters.local_input(model, rows)
    expected = model.predict(local)
    if hasattr(model, "predict_proba"):
        assert result["predictions"] == expected.tolist()
        assert result["classes"] == model.classes_.tolist()
        np.testing.assert_allclose(
            result["probabilities"], model.predict_proba(local), rtol=0, atol=RTOL
        )
        return
    got = np.asarray(result["predictions"], dtype=np.float64)
    assert np.abs(got - expected).max() <= RTOL * np.abs(expected).max()


@pytest.mark.parametrize(
    "name", ["xgb_multiclass", "lgbm_string_labels", "pipeline_xgb", "pipeline_lgbm"]
)
@pytest.mark.e2e
@pytest.mark.usefixtures("worker")
def test_wrapper_pickle_is_served_with_the_local_answers(client, user, tmp_path, name):
    model, path = boosters.dump_wrapper(name, tmp_path)
    meta = _ready(client, user, path, name)
    assert meta["framework"] == ("xgboost" if "xgb" in name else "lightgbm")
    assert meta["format"] == "joblib"
    # Equivalent on the probe rows: ONNX; LightGBM's converter makes float graphs only, whose
    # regression values are a few 1e-6 off small ones: scikit-learn keeps that pipeline.
    expected = "sklearn" if name == "pipeline_lgbm" else "onnx"
    assert meta["runtime"] == expected, meta["runtime_reason"]
    rows = boosters.held_out()
    _assert_local_answers(_predict(client, user, meta, rows), model, rows)


@pytest.mark.parametrize(
    "name", ["xgb_binary.json", "xgb_regressor.ubj", "lgbm_multiclass.txt", "lgbm_regressor.txt"]
)
@pytest.mark.e2e
@pytest.mark.usefixtures("worker")
def test_native_file_is_served_by_its_library(client, user, tmp_path, name):
    model, path = boosters.write_native(name, tmp_path)
    meta = _ready(client, user, path, name.replace(".", "-"))
    library = "xgboost" if name.startswith("xgb") else "lightgbm"
    assert meta["framework"] == meta["runtime"] == library
    assert (
        meta["format"]
        == {"json": "xgboost_json", "ubj": "xgboost_ubj", "txt": "lightgbm_txt"}[path.suffix[1:]]
    )
    assert meta["input_schema"]["n_features"] == boosters.N_FEATURES
    rows = boosters.held_out()
    _assert_local_answers(_predict(client, user, meta, rows), model, rows)


@pytest.mark.e2e
@pytest.mark.usefixtures("worker")
def test_unloaded_booster_in_a_pickle_is_an_invalid_model(client, user, tmp_path):
    model = boosters.fit("xgb_binary")
    model.get_booster().handle = None  # a crafted state: XGBoost's __setstate__ skips None
    path = tmp_path / "crafted.joblib"
    joblib.dump(model, path)
    resp = upload(client, user, path, name="crafted")
    assert resp.status_code == 422, resp.json
    assert resp.json["error"]["code"] == "invalid_model"
    model_id = resp.json["error"]["details"]["model_id"]
    record = client.get(f"/api/v1/models/{model_id}", headers=user.headers).json
    assert record["status"] == "failed" and "was not loaded from a model" in record["error"]


@pytest.mark.parametrize(
    ("content", "filename", "message"),
    [
        (b"CBM1\x00\x01\x02\x03", "model.cbm", "CatBoost models are not served: export"),
        (b'{"not": "xgboost"}', "model.ubjson", "export the model to ONNX"),
        (b"just some text", "model.txt", "LightGBM's text model file"),
    ],
)
def test_catboost_and_unknown_files_are_refused_with_advice(
    client, user, tmp_path, content, filename, message
):
    path = tmp_path / filename
    path.write_bytes(content)
    resp = upload(client, user, path, name="refused")
    assert resp.status_code == 415, resp.json
    assert message in resp.json["error"]["message"]
