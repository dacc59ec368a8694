"""PyTorch models, served as ONNX: the MLPs that tests/fixtures/pytorch/make_mlp.py trained and
exported with torch are uploaded through the API, predicted by a real worker, and compared with
torch's own answers recorded beside them (torch itself is not needed here)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.models import upload

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker")]
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pytorch"
EXPECTED = json.loads((FIXTURES / "mlp_expected.json").read_text())
ATOL = 1e-5  # both run float32; ONNX Runtime's kernels are not torch's


def _ready(client, account, file_name: str) -> dict:
    resp = upload(client, account, FIXTURES / file_name, name=Path(file_name).stem)
    assert resp.status_code in (201, 202), resp.json
    meta = _validated(client, account, resp.json)
    assert meta["status"] == "ready", meta
    assert (meta["format"], meta["framework"], meta["runtime"]) == ("onnx", "onnx", "onnx")
    assert meta["info"]["estimator"] == "onnx (pytorch)"
    schema = meta["input_schema"]
    assert (schema["n_features"], schema["feature_names"]) == (4, None)
    return meta


def _validated(client, account, meta: dict, wait: float = 60) -> dict:
    """The model once validation ended: a 202 (still `validating` after VALIDATION_WAIT_S, e.g.
    on a busy machine) is polled as docs/api.md tells clients to."""
    deadline = time.monotonic() + wait
    while meta["status"] == "validating" and time.monotonic() < deadline:
        time.sleep(0.2)
        meta = client.get(f"/api/v1/models/{meta['id']}", headers=account.headers).json
    return meta


def _predict(client, account, model_id: str, rows: list, proba: bool) -> dict:
    resp = client.post(
        f"/api/v1/models/{model_id}/predict?timeout=30",
        json={"inputs": rows, "return_probabilities": proba},
        headers=account.headers,
    )
    assert resp.status_code == 200, resp.json
    assert resp.json["status"] == "succeeded", resp.json
    assert resp.json["runtime"] == "onnx"
    return resp.json["result"]


def test_pytorch_classifier_answers_as_torch_did(client, user):
    """A label output first and a probability output second make a classifier whose classes
    are the probability columns' indices; the batch axis was exported as dynamic, so one row
    works as well as many (the export's example had two)."""
    expected = EXPECTED["classifier"]
    meta = _ready(client, user, expected["file"])
    assert meta["output_schema"] == {
        "task": "classification",
        "classes": None,
        "has_proba": True,
        "has_scores": False,
    }
    for rows in (slice(None), slice(-1, None)):
        result = _predict(client, user, meta["id"], EXPECTED["inputs"][rows], proba=True)
        assert result["predictions"] == expected["labels"][rows]
        assert result["classes"] == [0, 1, 2]
        np.testing.assert_allclose(
            result["probabilities"], expected["probabilities"][rows], atol=ATOL, rtol=0
        )


def test_pytorch_regressor_answers_as_torch_did(client, user):
    """One float output of shape [batch, 1] is a regressor with one number per row."""
    expected = np.asarray(EXPECTED["regressor"]["predictions"])
    meta = _ready(client, user, EXPECTED["regressor"]["file"])
    assert meta["output_schema"] == {
        "task": "regression",
        "classes": None,
        "has_proba": False,
        "has_scores": False,
    }
    result = _predict(client, user, meta["id"], EXPECTED["inputs"], proba=False)
    got = np.asarray(result["predictions"], dtype=np.float64)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= ATOL * max(1.0, np.abs(expected).max())
