"""A typed pipeline compiled to ONNX with one input per column, end to end: uploaded, validated
and predicted by a real worker, served by ONNX Runtime, answering as the local model does on rows
with missing values and an unseen category."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tests.fixtures.models import upload_ready
from tests.web.jobs.calls import poll, submit

pytestmark = [pytest.mark.e2e]

RNG = np.random.default_rng(5)
N = 200
FRAME = pd.DataFrame(
    {
        "age": RNG.normal(40, 12, N).round(1),
        "city": RNG.choice(["Oslo", "Rome", "Lima"], N),
        "income": RNG.normal(50_000, 9_000, N).round(),
    }
)
FRAME.loc[::7, "age"] = np.nan
LABELS = np.where((FRAME["city"] == "Oslo") ^ (FRAME["age"].fillna(40) > 42), "yes", "no")
ROWS = [
    {"age": 31.0, "city": "Oslo", "income": 42_000},
    {"age": None, "city": None, "income": 61_000},
    {"age": 55.5, "city": "Paris", "income": 38_000},  # unseen city
    {"age": 23.0, "city": "nan", "income": None},
]


def _pipeline():
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )
    return make_pipeline(pre, LogisticRegression()).fit(FRAME, LABELS)


@pytest.mark.usefixtures("worker")
def test_a_typed_pipeline_is_served_by_onnx_with_the_local_answers(client, user, tmp_path):
    model = _pipeline()
    meta = upload_ready(client, user, model, tmp_path, name="typed-onnx")
    assert meta["runtime"] == "onnx", meta["runtime_reason"]
    assert "one per column" in meta["runtime_reason"]
    local = pd.DataFrame(ROWS, columns=list(FRAME.columns), dtype=object)
    local = local.astype({"age": "float64", "income": "float64"})
    expected, proba = model.predict(local).tolist(), model.predict_proba(local)
    body = {"inputs": ROWS, "return_probabilities": True}

    inline = client.post(f"/api/v1/models/{meta['id']}/predict", json=body, headers=user.headers)
    assert inline.status_code == 200, inline.json
    queued = poll(client, user, submit(client, user, meta["id"], body).json["id"]).json
    assert queued["status"] == "succeeded", queued
    for result in (inline.json["result"], queued["result"]):
        assert result["predictions"] == expected
        assert result["classes"] == ["no", "yes"]
        np.testing.assert_allclose(result["probabilities"], proba, atol=1e-6, rtol=0)
