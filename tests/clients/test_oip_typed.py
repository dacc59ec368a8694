"""Open Inference Protocol v2 with one input per column: a pipeline on a frame of strings,
booleans, integers and numbers with missing values, predicted through tritonclient (binary
BYTES, BOOL, INT64 and FP64 tensors) and plain JSON (nulls, MLServer's pd_json), by a real
worker, answered as the local model answers; bad columns refused with the OIP 400."""

from __future__ import annotations

import math
import re
import struct

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from shared.errors import BadRequest
from shared.schemas.oip import RequestInput
from tests.clients.typed import NAMES, ROWS, local_frame
from web.oip import columns


@pytest.fixture
def triton_client(live_url):
    tc = triton.InferenceServerClient(url=live_url.removeprefix("http://"))
    yield tc
    tc.close()


@pytest.fixture
def headers(api_key):
    return {"X-API-Key": api_key}


def _column(name: str, values: np.ndarray, datatype: str, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput(name, [len(values)], datatype)
    return tensor.set_data_from_numpy(values, binary_data=binary)


def _triton_inputs(rows: list[list]) -> list[triton.InferInput]:
    """The frame's columns as tritonclient sends them, in an order of their own. A binary
    FP64 NaN is the missing age; tritonclient cannot send a missing string (it would send
    the text "None"), so the rows here have a city."""
    cols = list(zip(*rows, strict=True))
    age = np.array([math.nan if v is None else v for v in cols[0]], dtype=np.float64)
    return [
        _column("plan", np.array(cols[4], dtype=object), "BYTES", binary=False),
        _column("city", np.array(cols[1], dtype=object), "BYTES", binary=True),
        _column("rooms", np.array(cols[3], dtype=np.int64), "INT64", binary=True),
        _column("age", age, "FP64", binary=True),
        _column("member", np.array(cols[2], dtype=bool), "BOOL", binary=True),
    ]


@pytest.mark.e2e
def test_tritonclient_columns_answer_as_the_local_model(triton_client, headers, typed, pipeline):
    meta = triton_client.get_model_metadata("stays", headers=headers)
    assert meta["inputs"] == [
        {"name": "age", "datatype": "FP64", "shape": [-1]},
        {"name": "city", "datatype": "BYTES", "shape": [-1], "parameters": {"content_type": "str"}},
        {"name": "member", "datatype": "BOOL", "shape": [-1]},
        {"name": "rooms", "datatype": "INT64", "shape": [-1]},
        {"name": "plan", "datatype": "BYTES", "shape": [-1], "parameters": {"content_type": "str"}},
    ]
    assert meta["parameters"]["content_type"] == "pd"
    assert meta["outputs"][0] == {"name": "predict", "datatype": "BYTES", "shape": [-1]}

    rows = [ROWS[0], [None, "Rome", False, 1, "basic"], ROWS[2], ROWS[3]]
    result = triton_client.infer("stays", _triton_inputs(rows), headers=headers)
    local = local_frame(rows)
    assert result.as_numpy("predict").astype(str).tolist() == pipeline.predict(local).tolist()
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), pipeline.predict_proba(local), rtol=1e-6, atol=1e-9
    )
    inputs = _triton_inputs(ROWS[:1])[:-1]  # no "member"
    with pytest.raises(InferenceServerException) as err:
        triton_client.infer("stays", inputs, headers=headers)
    assert err.value.status() == "400" and "'member'" in err.value.message()


@pytest.mark.e2e
def test_json_columns_with_nulls_pd_json_and_refusals(live_url, headers, typed, pipeline):
    url = f"{live_url}/v2/models/stays/infer"
    cols = list(zip(*ROWS, strict=True))
    datatypes = dict(zip(NAMES, ["FP64", "BYTES", "BOOL", "INT32", "BYTES"], strict=True))
    inputs = [
        {"name": name, "shape": [len(ROWS), 1], "datatype": datatypes[name], "data": list(values)}
        for name, values in zip(NAMES, cols, strict=True)
    ]
    body = {"id": "typed-1", "parameters": {"content_type": "pd"}, "inputs": inputs[::-1]}
    resp = requests.post(url, json=body, headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    outputs = {o["name"]: o for o in resp.json()["outputs"]}
    local = local_frame(ROWS)
    assert outputs["predict"]["data"] == pipeline.predict(local).tolist()
    assert outputs["predict_proba"]["shape"] == [len(ROWS), 2]
    # MLServer's pandas codec sends a string column with a missing value as JSON texts.
    city = {"name": "city", "shape": [len(ROWS)], "datatype": "BYTES"}
    city["data"] = ['"Oslo"', "null", '"Paris"', '"Lima"']
    city["parameters"] = {"content_type": "pd_json"}
    body["inputs"] = [city if i["name"] == "city" else i for i in inputs]
    again = requests.post(url, json=body, headers=headers, timeout=30)
    assert again.status_code == 200, again.text
    assert again.json()["outputs"][0]["data"] == pipeline.predict(local).tolist()
    _bad_columns_are_400_naming_them(url, headers)


def _bad_columns_are_400_naming_them(url: str, headers: dict) -> None:
    good = {
        "age": ("FP64", [30.0]),
        "city": ("BYTES", ["Oslo"]),
        "member": ("BOOL", [True]),
        "rooms": ("INT64", [2]),
        "plan": ("BYTES", ["pro"]),
    }

    def infer(**changes) -> requests.Response:
        spec = {**good, **changes}
        inputs = [
            {"name": name, "shape": [1], "datatype": datatype, "data": data}
            for name, (datatype, data) in spec.items()
            if datatype is not None
        ]
        return requests.post(url, json={"inputs": inputs}, headers=headers, timeout=30)

    cases = {
        "expected a number, got a string (row 0, column 'age')": {"age": ("BYTES", ["30"])},
        "missing value (null): this model needs a value in this column (row 0, column 'plan')": {
            "plan": ("BYTES", [None])
        },
        "unknown category 'gold'": {"plan": ("BYTES", ["gold"])},
        "Missing input for column 'rooms'": {"rooms": (None, None)},
        "Unknown input 'colour'": {"colour": ("BYTES", ["red"])},
        "'yes' is not a BOOL value": {"member": ("BOOL", ["yes"])},
        "inputs.0.datatype": {"age": ("FP8", [30.0])},
    }
    for message, change in cases.items():
        resp = infer(**change)
        assert resp.status_code == 400, (message, resp.text)
        assert message in resp.json()["error"], resp.json()
    # More values than the shape says, and inputs that disagree on their number of rows.
    resp = infer(age=("FP64", [30.0, 31.0]))
    assert resp.status_code == 400 and "(1 values) but 2" in resp.json()["error"]
    inputs = [{"name": n, "datatype": d, "data": v, "shape": [1]} for n, (d, v) in good.items()]
    inputs[0].update(shape=[2], data=[30.0, 31.0])
    resp = requests.post(url, json={"inputs": inputs}, headers=headers, timeout=30)
    assert resp.status_code == 400 and "same number of rows" in resp.json()["error"]


COLUMNS = [{"name": "s", "dtype": "string"}, {"name": "x", "dtype": "number"}]


def _input(name: str, datatype: str, shape: list[int], data=None, **parameters) -> RequestInput:
    return RequestInput.model_construct(
        name=name, shape=shape, datatype=datatype, data=data, parameters=parameters or None
    )


def _bytes(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


@pytest.mark.no_db
def test_binary_columns_decode_in_order():
    text = _bytes("Zürich".encode(), b"")
    fp32 = np.array([0.1, math.nan], dtype="<f4").tobytes()
    inputs = [
        _input("x", "FP32", [2, 1], binary_data_size=len(fp32)),
        _input("s", "BYTES", [2], binary_data_size=len(text)),
    ]
    rows = columns.column_rows(inputs, fp32 + text, COLUMNS)
    assert rows == [["Zürich", float(np.float32(0.1))], ["", None]]
    json_text = _bytes(b'"a"', b"null")
    inputs = [
        _input("s", "BYTES", [2], binary_data_size=len(json_text), content_type="pd_json"),
        _input("x", "FP32", [2], [0.1, None]),
    ]
    rows = columns.column_rows(inputs, json_text, COLUMNS)
    assert rows == [["a", float(np.float32(0.1))], [None, None]]


@pytest.mark.no_db
def test_binary_columns_refused():
    x = _input("x", "FP64", [1], [1.0])
    cases = [
        (_input("s", "BYTES", [1], binary_data_size=4), b"\x05\x00\x00\x00", "runs past"),
        (_input("s", "BYTES", [1], binary_data_size=5), _bytes(b"\xff"), "not UTF-8"),
        (_input("s", "BYTES", [1], binary_data_size=9), _bytes(b"a"), "goes past"),
        (_input("s", "BYTES", [1], binary_data_size=5), _bytes(b"a") + b"!", "add up to 5"),
        (_input("s", "BYTES", [2], binary_data_size=5), _bytes(b"a"), "(2 values) but 1"),
        (_input("s", "BYTES", [1, 2], ["a", "b"]), b"", "shape [rows] or [rows, 1]"),
        (_input("s", "BYTES", [1], [3]), b"", "3 is not a BYTES value"),
        (_input("s", "BYTES", [1], ["[1]"], content_type="pd_json"), b"", "is not one value"),
    ]
    for tensor, binary, message in cases:
        with pytest.raises(BadRequest, match=re.escape(message)):
            columns.column_rows([tensor, x], binary, COLUMNS)
    s = _input("s", "BYTES", [1], ["a"])
    with pytest.raises(BadRequest, match="overflows INT8"):
        columns.column_rows([s, _input("x", "INT8", [1], [300])], b"", COLUMNS)
    with pytest.raises(BadRequest, match="given twice"):
        columns.column_rows([x, x], b"", COLUMNS)
