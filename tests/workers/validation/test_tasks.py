"""What describe() and the smoke predict make of the estimators beyond classify/regress: the task
each answers, probabilities only where predict_proba exists, and models that cannot answer."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import DBSCAN, Birch, KMeans, MiniBatchKMeans
from sklearn.compose import TransformedTargetRegressor
from sklearn.covariance import EllipticEnvelope
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import Lasso, Perceptron, RidgeClassifier, SGDClassifier
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC, OneClassSVM

from tests.fixtures.models import iris
from workers.runtimes.sklearn import SklearnRuntime
from workers.validation.introspect import NotAModelError, describe, smoke_predict

pytestmark = pytest.mark.no_db


def _fit(model):
    x, y = iris()
    return model.fit(x, y)


@pytest.mark.parametrize(
    ("model", "task"),
    [
        (KMeans(3, n_init=1, random_state=0), "clustering"),
        (
            make_pipeline(StandardScaler(), MiniBatchKMeans(3, n_init=1, random_state=0)),
            "clustering",
        ),
        (Birch(n_clusters=3), "clustering"),
        (IsolationForest(n_estimators=10, random_state=0), "outlier"),
        (make_pipeline(StandardScaler(), OneClassSVM()), "outlier"),
        (EllipticEnvelope(random_state=0), "outlier"),
        (LocalOutlierFactor(novelty=True), "outlier"),
        (LinearSVC(), "classification"),
        (TransformedTargetRegressor(Lasso(), func=np.log1p, inverse_func=np.expm1), "regression"),
    ],
)
def test_task_and_no_probabilities(model, task):
    meta = describe(_fit(model))
    schema = meta["output_schema"]
    assert schema["task"] == task
    assert schema["has_proba"] is False
    if task != "classification":
        assert schema["classes"] is None
    smoke_predict(model, meta["input_schema"])


@pytest.mark.parametrize("model", [LinearSVC(), RidgeClassifier(), Perceptron(), SGDClassifier()])
def test_classifier_without_predict_proba_answers_labels_and_says_so(model):
    x, _ = iris()
    runtime = SklearnRuntime(_fit(model), None)
    assert describe(model)["output_schema"]["classes"] == [0, 1, 2]
    assert runtime.predict(x[:3]) == model.predict(x[:3]).tolist()
    with pytest.raises(ValueError, match="cannot return probabilities"):
        runtime.predict_proba(x[:3])


def test_outlier_labels_are_one_and_minus_one():
    x, _ = iris()
    model = _fit(IsolationForest(n_estimators=10, random_state=0))
    far = np.vstack([x[:5], np.full((1, 4), 100.0)])
    answers = SklearnRuntime(model, None).predict(far)
    assert set(answers) <= {-1, 1} and answers[-1] == -1


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (DBSCAN(), "has no predict"),  # labels only for its training rows
        (LocalOutlierFactor(), "has no predict"),  # novelty=False
        (make_pipeline(StandardScaler(), PCA(2)), "has no predict"),
        (GaussianMixture(3, random_state=0), "not a classifier, regressor, clusterer or outlier"),
    ],
)
def test_models_that_cannot_answer_are_refused(model, reason):
    with pytest.raises(NotAModelError, match=reason):
        describe(_fit(model))
