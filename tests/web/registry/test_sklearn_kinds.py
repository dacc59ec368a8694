"""Estimators the scikit-learn-wide allow-list admits, end to end: uploaded through the API,
validated in the worker's sandbox, predicted through a real worker and compared with the local
model. A few representative kinds (the allow-list and audit are unit-tested over all of them)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.cluster import KMeans
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import IsolationForest, StackingClassifier
from sklearn.feature_selection import SelectKBest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, PolynomialFeatures, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from tests.fixtures.models import iris, upload_ready

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker")]
ROWS = iris()[0][::15].tolist()


def _predict(client, account, model_id: str, probabilities: bool = False):
    return client.post(
        f"/api/v1/models/{model_id}/predict?timeout=20",
        json={"inputs": ROWS, "return_probabilities": probabilities},
        headers=account.headers,
    )


def _composite():
    """Imputer, log transform, polynomial features, feature selection, a stacked ensemble."""
    stack = StackingClassifier(
        [("lr", LogisticRegression(max_iter=500)), ("tree", DecisionTreeClassifier(max_depth=3))],
        final_estimator=CalibratedClassifierCV(LogisticRegression(max_iter=500), cv=3),
        cv=3,
    )
    return make_pipeline(
        SimpleImputer(),
        FunctionTransformer(np.log1p),
        PolynomialFeatures(2, include_bias=False),
        SelectKBest(k=6),
        stack,
    )


@pytest.mark.parametrize(
    ("build", "task", "has_proba"),
    [
        (
            lambda: make_pipeline(StandardScaler(), KMeans(3, n_init=2, random_state=0)),
            "clustering",
            False,
        ),
        (lambda: IsolationForest(n_estimators=20, random_state=0), "outlier", False),
        (lambda: LinearSVC(), "classification", False),
        (_composite, "classification", True),
        (
            lambda: TransformedTargetRegressor(
                ElasticNet(alpha=0.01), func=np.log1p, inverse_func=np.expm1
            ),
            "regression",
            False,
        ),
    ],
    ids=["kmeans", "isolation_forest", "linear_svc", "composite", "target_transform"],
)
def test_kind_is_served_as_it_answers_locally(client, user, tmp_path, build, task, has_proba):
    x, y = iris()
    model = build().fit(x, y)
    meta = upload_ready(client, user, model, tmp_path, name="kind")
    assert meta["output_schema"]["task"] == task
    assert meta["output_schema"]["has_proba"] is has_proba
    resp = _predict(client, user, meta["id"])
    assert resp.status_code == 200, resp.json
    expected = model.predict(np.array(ROWS)).tolist()
    if task == "regression":
        np.testing.assert_allclose(resp.json["result"]["predictions"], expected, rtol=1e-6)
    else:
        assert resp.json["result"]["predictions"] == expected
    asked = _predict(client, user, meta["id"], probabilities=True)
    if has_proba:
        np.testing.assert_allclose(
            asked.json["result"]["probabilities"], model.predict_proba(np.array(ROWS)), atol=1e-6
        )
    else:
        assert asked.status_code == 422, asked.json
        assert asked.json["error"]["details"] == {"field": "return_probabilities"}
