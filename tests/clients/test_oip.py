"""Open Inference Protocol v2 end to end: tritonclient and plain KServe v2 JSON over real HTTP,
through the queue and a real worker."""

from __future__ import annotations

import json
import re
import uuid

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from shared.db import session_scope
from shared.errors import BadRequest
from shared.models import MLModel
from shared.schemas.oip import RequestInput, RequestOutput
from tests.fixtures.api import register_and_login
from tests.fixtures.models import (
    fit_classifier,
    fit_regressor,
    fit_string_labels,
    iris,
    upload_ready,
)
from web.oip import tensors
from web.oip.tensors import PROBA

pytestmark = pytest.mark.e2e

ROWS = np.array(iris()[0][::30])  # 5 rows across the three classes


@pytest.fixture
def triton_client(live_url):
    tc = triton.InferenceServerClient(url=live_url.removeprefix("http://"))
    yield tc
    tc.close()


@pytest.fixture
def headers(api_key):
    return {"X-API-Key": api_key}


def _input(rows: np.ndarray, datatype: str, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("input-0", list(rows.shape), datatype)
    return tensor.set_data_from_numpy(rows, binary_data=binary)


def test_server_and_model_metadata(triton_client, client, user, headers, tmp_path):
    upload_ready(client, user, fit_classifier(), tmp_path)
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.get_server_metadata()["name"] == "mlsp"
    assert triton_client.is_model_ready("iris", headers=headers)
    meta = triton_client.get_model_metadata("iris", headers=headers)
    assert meta["name"] == "iris" and meta["versions"] == ["1"]
    assert meta["platform"] == "sklearn"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]


def test_infer_fp32_binary_and_fp64_json(triton_client, client, user, headers, tmp_path):
    model = fit_classifier()
    upload_ready(client, user, model, tmp_path)
    rows32 = ROWS.astype(np.float32)
    result = triton_client.infer("iris", [_input(rows32, "FP32")], headers=headers)
    expected = rows32.astype(np.float64)
    assert result.as_numpy("predict").tolist() == model.predict(expected).tolist()
    np.testing.assert_allclose(result.as_numpy("predict_proba"), model.predict_proba(expected))
    only = [triton.InferRequestedOutput("predict", binary_data=False)]
    result = triton_client.infer(
        "iris",
        [_input(ROWS, "FP64", binary=False)],
        model_version="1",
        outputs=only,
        headers=headers,
        request_id="req-7",
    )
    assert result.as_numpy("predict").tolist() == model.predict(ROWS).tolist()
    assert result.as_numpy("predict_proba") is None
    assert result.get_response()["id"] == "req-7"
    assert result.get_response()["model_version"] == "1"


def test_string_labels_are_bytes_and_regression_is_fp64(
    triton_client, client, user, headers, tmp_path
):
    labels = fit_string_labels()
    upload_ready(client, user, labels, tmp_path, name="labels")
    out = triton_client.infer("labels", [_input(ROWS, "FP64")], headers=headers)
    assert out.get_output("predict")["datatype"] == "BYTES"
    assert out.as_numpy("predict").tolist() == labels.predict(ROWS).tolist()
    reg = fit_regressor()
    upload_ready(client, user, reg, tmp_path, name="reg")
    x = np.array([[1, 2, 3], [-4, 5, 0]], dtype=np.int64)
    out = triton_client.infer("reg", [_input(x, "INT64")], headers=headers)
    assert out.get_output("predict")["datatype"] == "FP64"
    np.testing.assert_allclose(out.as_numpy("predict"), reg.predict(x.astype(float)))


def test_wrong_shape_and_unknown_model(triton_client, client, user, headers, tmp_path):
    upload_ready(client, user, fit_classifier(), tmp_path)
    with pytest.raises(InferenceServerException) as err:
        triton_client.infer("iris", [_input(ROWS[:, :3], "FP64")], headers=headers)
    assert err.value.status() == "400"
    assert "expects 4" in err.value.message()
    with pytest.raises(InferenceServerException) as err:
        triton_client.get_model_metadata("nope", headers=headers)
    assert err.value.status() == "404"
    with pytest.raises(InferenceServerException) as err:
        triton_client.get_model_metadata("iris")  # no credentials
    assert err.value.status() == "401"
    assert not triton_client.is_model_ready("iris", model_version="9", headers=headers)


def test_plain_kserve_json(live_url, client, user, headers, tmp_path):
    model = fit_classifier()
    upload_ready(client, user, model, tmp_path)
    url = f"{live_url}/v2/models/iris/infer"
    body = {"inputs": [{"name": "x", "shape": [5, 4], "datatype": "FP64", "data": ROWS.tolist()}]}
    # No JSON content type (as `curl -d` sends): the protocol does not require one.
    resp = requests.post(url, data=json.dumps(body), headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    outputs = {o["name"]: o for o in resp.json()["outputs"]}
    assert outputs["predict"]["data"] == model.predict(ROWS).tolist()
    assert outputs["predict_proba"]["shape"] == [5, 3]
    body["inputs"][0]["data"] = ROWS.ravel().tolist()[:-2]
    resp = requests.post(url, json=body, headers=headers, timeout=30)
    assert resp.status_code == 400
    assert resp.json() == {"error": "Input 'x' has shape [5, 4] (20 values) but 18 values"}
    body["inputs"][0].update(data=[[1, 2, "3", 4]], shape=[1, 4])
    assert requests.post(url, json=body, headers=headers, timeout=30).status_code == 400
    anonymous = requests.post(url, json=body, timeout=30)  # a JWT failure, flattened for OIP
    assert anonymous.status_code == 401 and isinstance(anonymous.json()["error"], str)


def test_newest_ready_version_is_the_default(triton_client, client, user, headers, tmp_path):
    first = upload_ready(client, user, fit_classifier(), tmp_path)
    second = upload_ready(client, user, fit_classifier(), tmp_path)
    meta = triton_client.get_model_metadata("iris", headers=headers)
    assert meta["parameters"]["model_id"] == second["id"]
    client.patch(
        f"/api/v1/models/{second['id']}", json={"status": "disabled"}, headers=user.headers
    )
    meta = triton_client.get_model_metadata("iris", headers=headers)
    assert meta["parameters"]["model_id"] == first["id"] and meta["versions"] == ["1"]
    assert not triton_client.is_model_ready("iris", model_version="2", headers=headers)
    with pytest.raises(InferenceServerException) as err:
        triton_client.infer("iris", [_input(ROWS, "FP64")], model_version="2", headers=headers)
    assert err.value.status() == "400" and "disabled" in err.value.message()


def _ready_model_row(owner_id: str) -> None:
    """A ready model in the database only: no worker will ever run it in this test."""
    with session_scope() as s:
        s.add(
            MLModel(
                id=uuid.uuid4(),
                owner_id=uuid.UUID(owner_id),
                name="iris",
                version=1,
                status="ready",
                format="joblib",
                artifact_key="none.joblib",
                sha256="0" * 64,
                size_bytes=1,
                input_schema={"n_features": 4, "feature_names": None},
                output_schema={"task": "classification", "classes": [0, 1], "has_proba": True},
            )
        )


def test_timeout_answers_504_and_the_job_goes_on(private_queue):
    owner = register_and_login(private_queue.client)
    _ready_model_row(owner.id)
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}
    resp = private_queue.client.post(
        "/v2/models/iris/infer?timeout=0.3", json=body, headers=owner.headers
    )
    assert resp.status_code == 504
    assert "did not finish within 0.3s" in resp.json["error"]
    job = private_queue.client.get(resp.headers["Location"], headers=owner.headers).json
    assert job["status"] == "queued"


def _tensor(shape, datatype, data=None, **parameters) -> RequestInput:
    return RequestInput(
        name="x", shape=shape, datatype=datatype, data=data, parameters=parameters or None
    )


@pytest.mark.no_db
def test_tensor_decoding():
    flat = tensors.input_rows(_tensor([2, 2], "INT32", [1, 2, 3, 4]), b"", 2)
    assert tensors.input_rows(_tensor([1, 2], "UINT8", [0, 255]), b"", 2) == [[0.0, 255.0]]
    nested = tensors.input_rows(_tensor([2, 2], "FP64", [[1, 2], [3, 4.5]]), b"", 2)
    assert flat == [[1.0, 2.0], [3.0, 4.0]] and nested == [[1.0, 2.0], [3.0, 4.5]]
    raw = np.array([[0.1, 0.2]], dtype="<f4").tobytes()
    binary = tensors.input_rows(_tensor([1, 2], "FP32", binary_data_size=8), raw, 2)
    assert binary == np.array([[0.1, 0.2]], dtype=np.float32).astype(float).tolist()
    refused = [
        (_tensor([1, 2], "INT32", [1, 2**31]), b"", "overflows INT32"),
        (_tensor([1, 2], "INT64", [1, 2.5]), b"", "is not a INT64 value"),
        (_tensor([1, 2], "FP64", [True, 1.0]), b"", "is not a FP64 value"),
        (_tensor([1, 2], "FP64", binary_data_size=16), raw, "does not match"),
        (_tensor([2], "FP64", [1, 2]), b"", "must have shape [rows, 2]"),
        (_tensor([1, 2], "BYTES", ["a", "b"]), b"", "one input per column"),
    ]
    for tensor, tail, message in refused:
        with pytest.raises(BadRequest, match=re.escape(message)):
            tensors.input_rows(tensor, tail, 2)


@pytest.mark.no_db
def test_request_parsing_and_outputs():
    body = b'{"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP64", "data": [1]}]}'
    parsed, tail = tensors.parse_request(body, header_length="12")  # stale header: ignored
    assert tail == b"" and parsed.inputs[0].data == [1]
    with pytest.raises(BadRequest, match="datatype"):
        tensors.parse_request(body.replace(b"FP64", b"BF16"), None)
    with pytest.raises(BadRequest, match="Unknown output 'predict_proba'"):
        tensors.output_names(
            parsed.model_copy(update={"outputs": [RequestOutput(name=PROBA)]}), False
        )
    assert tensors.label_datatype(["a", "b"]) == "BYTES"
    assert tensors.label_datatype([1, 2]) == "INT64"
    assert tensors.label_datatype([0.5, 1]) == "FP64"
