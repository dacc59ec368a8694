"""Typed rows end to end: a pipeline on a pandas frame with strings, text and missing values,
uploaded, predicted by a real worker on every path a job takes (inline sync, durable async, an
Idempotency-Key replay, a sync wait that runs out), and answered as the local model answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tests.fixtures.models import upload_ready
from tests.web.jobs.calls import job_count, poll, submit

pytestmark = [pytest.mark.e2e]

RNG = np.random.default_rng(3)
N = 200
FRAME = pd.DataFrame(
    {
        "age": RNG.normal(40, 12, N).round(1),
        "city": RNG.choice(["Oslo", "Rome", "Lima"], N),
        "review": RNG.choice(["great food", "slow service", "great view", "noisy"], N),
        "plan": RNG.choice(["basic", "pro"], N),
    }
)
FRAME.loc[::7, "age"] = np.nan
FRAME.loc[::5, "city"] = np.nan
LABELS = np.where(FRAME["review"].str.contains("great"), "happy", "unhappy")
ROWS = [
    {"age": 31.0, "city": "Oslo", "review": "great food", "plan": "pro"},
    {"age": None, "city": None, "review": "noisy", "plan": "basic"},
    {"age": 55.5, "city": "Paris", "review": "great view", "plan": "basic"},  # unseen city
]


def _pipeline():
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["age"]),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                ["city"],
            ),
            ("text", TfidfVectorizer(), "review"),
            ("plan", OneHotEncoder(), ["plan"]),  # raises on an unknown plan
        ]
    )
    return make_pipeline(pre, LogisticRegression(max_iter=500)).fit(FRAME, LABELS)


def _local(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(FRAME.columns))
    return frame.fillna({"age": math.nan}).astype({"age": "float64"})


@pytest.fixture(scope="module")
def pipeline():
    return _pipeline()


@pytest.mark.usefixtures("worker")
class TestTypedPipeline:
    def test_every_path_answers_as_the_local_model(self, client, user, pipeline, tmp_path):
        meta = upload_ready(client, user, pipeline, tmp_path, name="reviews")
        assert meta["runtime"] == "sklearn"
        columns = {c["name"]: c for c in meta["input_schema"]["columns"]}
        assert columns["city"]["dtype"] == "string" and columns["city"]["nullable"] is True
        assert columns["plan"] == {
            "name": "plan",
            "dtype": "string",
            "nullable": False,
            "categories": ["basic", "pro"],
        }  # refuses_unknown stays internal
        expected = pipeline.predict(_local(ROWS)).tolist()
        proba = pipeline.predict_proba(_local(ROWS))
        url = f"/api/v1/models/{meta['id']}/predict"
        body = {"inputs": ROWS, "return_probabilities": True}

        inline = client.post(url, json=body, headers=user.headers)
        assert inline.status_code == 200, inline.json
        assert inline.json["result"]["predictions"] == expected
        np.testing.assert_allclose(inline.json["result"]["probabilities"], proba, rtol=1e-9)

        queued = submit(client, user, meta["id"], body, **{"Idempotency-Key": "typed-1"})
        done = poll(client, user, queued.json["id"]).json
        assert done["status"] == "succeeded", done
        assert done["result"]["predictions"] == expected
        again = submit(client, user, meta["id"], body, **{"Idempotency-Key": "typed-1"})
        assert again.json["id"] == queued.json["id"]
        changed = {"inputs": [ROWS[0]], "return_probabilities": True}
        assert (
            submit(client, user, meta["id"], changed, **{"Idempotency-Key": "typed-1"}).status_code
            == 409
        )

        listed = [list(row.values()) for row in ROWS]  # rows as lists, in feature order
        late = client.post(f"{url}?timeout=0", json={"inputs": listed}, headers=user.headers)
        assert late.status_code in (200, 202)
        finished = poll(client, user, late.json["id"]).json
        assert finished["result"]["predictions"] == expected

    def test_bad_typed_rows_are_refused_before_a_job_exists(self, client, user, pipeline, tmp_path):
        meta = upload_ready(client, user, pipeline, tmp_path, name="reviews-bad")
        url = f"/api/v1/models/{meta['id']}/predict"
        before = job_count()
        cases = {
            ("plan", "unknown category 'gold'"): {**ROWS[0], "plan": "gold"},
            ("review", "missing value"): {**ROWS[0], "review": None},
            ("age", "expected a number"): {**ROWS[0], "age": "31"},
            ("city", "expected a string"): {**ROWS[0], "city": 3},
        }
        for (column, message), row in cases.items():
            resp = client.post(url, json={"inputs": [ROWS[0], row]}, headers=user.headers)
            assert resp.status_code == 422, resp.json
            assert resp.json["error"]["details"] == {"row": 1, "column": column}
            assert message in resp.json["error"]["message"]
        assert job_count() == before


@pytest.mark.usefixtures("worker")
def test_native_missing_values_of_a_numeric_model(client, user, tmp_path):
    frame = FRAME[["age"]].assign(x=RNG.normal(size=N))
    model = HistGradientBoostingRegressor(max_iter=20).fit(frame, RNG.normal(size=N))
    meta = upload_ready(client, user, model, tmp_path, name="hgb")
    assert all(c["nullable"] for c in meta["input_schema"]["columns"])
    rows = [[None, 0.5], [30.0, None], [None, None]]
    resp = client.post(
        f"/api/v1/models/{meta['id']}/predict", json={"inputs": rows}, headers=user.headers
    )
    assert resp.status_code == 200, resp.json
    local = model.predict(pd.DataFrame(rows, columns=["age", "x"], dtype="float64"))
    # Served by ONNX Runtime in float32 when equal within 1e-6 of the outputs' scale.
    scale = np.abs(local).max()
    np.testing.assert_allclose(resp.json["result"]["predictions"], local, atol=1e-6 * scale)
    assert meta["runtime"] == "onnx", meta["runtime_reason"]


@pytest.mark.usefixtures("worker")
def test_rows_with_gaps_go_to_scikit_learn_where_onnx_answers_them_otherwise(
    client, user, tmp_path
):
    """A forest's ONNX graph sends NaN down another branch than scikit-learn's trees: complete
    rows are served by ONNX Runtime, rows with a missing value by scikit-learn, each equal to
    the local answer."""
    x = RNG.normal(size=(300, 4))
    x[::4, 0] = np.nan
    forest = RandomForestClassifier(20, random_state=0).fit(x, x[:, 1] > 0)
    meta = upload_ready(client, user, forest, tmp_path, name="forest-gaps")
    assert meta["runtime"] == "onnx", meta["runtime_reason"]
    assert "missing values" in meta["runtime_reason"]
    assert all(c["nullable"] for c in meta["input_schema"]["columns"])
    url = f"/api/v1/models/{meta['id']}/predict"
    held_out = RNG.normal(size=(40, 4))
    held_out[::2, 0] = np.nan
    for rows, runtime in ((held_out[1::2], "onnx"), (held_out[::2], "sklearn")):
        inputs = [[None if np.isnan(v) else v for v in row] for row in rows.tolist()]
        body = {"inputs": inputs, "return_probabilities": True}
        done = client.post(url, json=body, headers=user.headers).json
        assert done["runtime"] == runtime, done
        assert done["result"]["predictions"] == forest.predict(rows).tolist()
        np.testing.assert_allclose(
            done["result"]["probabilities"], forest.predict_proba(rows), atol=1e-6
        )
