"""Numbers beyond float32 for models that cast their input to it: scikit-learn's trees refuse
them ("a value too large for dtype('float32')"), so the service refuses them at the edge with a
422 naming row and column, also when ONNX Runtime (which would answer them) serves the model."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shared.db import session_scope
from shared.errors import ValidationFailed
from shared.jobs.checks import normalise_rows
from shared.models import MLModel
from tests.fixtures.models import fit_frame_pipeline, iris, upload_ready
from workers.validation.introspect import describe, refuses_past_float32

X, Y = iris()


@pytest.mark.no_db
@pytest.mark.parametrize(
    ("model", "refuses"),
    [
        (RandomForestClassifier(n_estimators=3, random_state=0), True),
        (make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=3)), True),
        (HistGradientBoostingClassifier(max_iter=3), False),
        (LogisticRegression(max_iter=500), False),
    ],
    ids=["forest", "scaled-forest", "hist-gradient-boosting", "logistic"],
)
def test_the_probe_finds_models_that_refuse_past_float32(model, refuses):
    model.fit(X, Y)
    assert refuses_past_float32(model, describe(model)["input_schema"]) is refuses


@pytest.mark.no_db
def test_frame_pipeline_probe_keeps_its_columns():
    model = fit_frame_pipeline()
    assert refuses_past_float32(model, describe(model)["input_schema"]) is False


@pytest.mark.no_db
def test_the_edge_names_row_and_column():
    schema = {"n_features": 2, "feature_names": ["a", "b"], "float32": True}
    with pytest.raises(ValidationFailed) as err:
        normalise_rows([[1.0, 2.0], [3.0, -1e300]], schema, max_rows=10)
    assert err.value.details == {"row": 1, "column": "b"}
    assert normalise_rows([[3.4e38, -3.4e38]], schema, 10).tolist() == [[3.4e38, -3.4e38]]
    unflagged = {"n_features": 2, "feature_names": None}
    assert normalise_rows([[1e300, 0.0]], unflagged, 10).tolist() == [[1e300, 0.0]]


@pytest.mark.e2e
@pytest.mark.usefixtures("worker")
def test_a_forest_served_by_onnx_refuses_what_scikit_learn_refuses(client, user, tmp_path):
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y)
    model = upload_ready(client, user, forest, tmp_path, name="forest")
    assert model["runtime"] == "onnx"  # which would answer 1e300 as infinity
    with session_scope() as session:  # recorded for the edge, not part of the model object
        assert session.get(MLModel, uuid.UUID(model["id"])).input_schema["float32"] is True
    url = f"/api/v1/models/{model['id']}/predict"
    rows = X[:2].tolist()
    rows[1][2] = 1e300
    refused = client.post(url, json={"inputs": rows}, headers=user.headers)
    assert refused.status_code == 422, refused.json
    assert refused.json["error"]["details"] == {"row": 1, "column": 2}
    with pytest.raises(ValueError, match="float32"):
        forest.predict(np.array(rows))
    answered = client.post(url, json={"inputs": X[:2].tolist()}, headers=user.headers)
    assert answered.status_code == 200
    assert answered.json["result"]["predictions"] == forest.predict(X[:2]).tolist()
