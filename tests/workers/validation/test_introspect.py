"""workers.validation.introspect: describing fitted models and the one-row smoke prediction."""

from __future__ import annotations

import json
import platform

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC

from workers.validation.introspect import NotAModelError, SmokePredictError, describe, smoke_predict

X, Y = make_classification(n_samples=80, n_features=4, n_informative=2, random_state=0)
XR, YR = make_regression(n_samples=80, n_features=3, random_state=0)
FRAME = pd.DataFrame(X, columns=["age", "income", "height", "score"])


def _described(estimator: object) -> dict:
    info = describe(estimator)
    assert json.loads(json.dumps(info)) == info  # stored as JSON: no numpy types may leak
    return info


def test_binary_classifier():
    info = _described(LogisticRegression().fit(X, Y))
    assert info["estimator"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert info["steps"] is None
    assert info["framework"] == "sklearn"
    assert info["versions"] == {
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": pytest.importorskip("scipy").__version__,
        "python": platform.python_version(),
    }
    assert info["input_schema"] == {"n_features": 4, "feature_names": None}
    assert info["output_schema"] == {
        "task": "classification",
        "classes": [0, 1],
        "has_proba": True,
        "has_scores": False,
    }
    assert all(type(c) is int for c in info["output_schema"]["classes"])


def test_regressor():
    info = _described(HistGradientBoostingRegressor(max_iter=3).fit(XR, YR))
    assert info["output_schema"] == {
        "task": "regression",
        "classes": None,
        "has_proba": False,
        "has_scores": False,
    }
    assert info["input_schema"]["n_features"] == 3


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (np.where(Y == 1, "spam", "ham"), ["ham", "spam"]),
        (np.where(Y == 1, "spam", "ham").astype(object), ["ham", "spam"]),
        (Y.astype(bool), [False, True]),
        (Y + 1.0, [1.0, 2.0]),
    ],
)
def test_class_labels_are_plain_python(labels, expected):
    info = _described(RandomForestClassifier(n_estimators=2, random_state=0).fit(X, labels))
    classes = info["output_schema"]["classes"]
    assert classes == expected
    assert [type(c) for c in classes] == [type(e) for e in expected]


def test_dataframe_pipeline():
    model = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression())]).fit(FRAME, Y)
    info = _described(model)
    assert info["estimator"] == "sklearn.pipeline.Pipeline"
    assert info["steps"] == [
        {"name": "scaler", "class": "sklearn.preprocessing._data.StandardScaler"},
        {"name": "clf", "class": "sklearn.linear_model._logistic.LogisticRegression"},
    ]
    assert info["input_schema"] == {
        "n_features": 4,
        "feature_names": ["age", "income", "height", "score"],
    }
    assert info["output_schema"]["has_proba"] is True
    smoke_predict(model, info["input_schema"])


def test_passthrough_step_is_named():
    steps = [("scale", StandardScaler()), ("skip", "passthrough"), ("reg", LinearRegression())]
    model = Pipeline(steps).fit(XR, YR)
    assert _described(model)["steps"][1] == {"name": "skip", "class": "passthrough"}


@pytest.mark.parametrize(("probability", "has_proba"), [(False, False), (True, True)])
@pytest.mark.filterwarnings("ignore:The `probability` parameter was deprecated:FutureWarning")
def test_svc_has_proba_only_when_fitted_with_probability(probability, has_proba):
    info = _described(SVC(probability=probability, random_state=0).fit(X, Y))
    assert info["output_schema"]["has_proba"] is has_proba


@pytest.mark.parametrize(
    "obj",
    [
        {"coef_": [1, 2]},
        "LogisticRegression",
        LogisticRegression(),  # not fitted
        StandardScaler().fit(X),  # no predict
        Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression())]),
    ],
    ids=["dict", "str", "unfitted", "transformer", "unfitted_pipeline"],
)
def test_not_a_model(obj):
    with pytest.raises(NotAModelError):
        describe(obj)


def test_not_a_model_is_a_value_error():
    assert issubclass(NotAModelError, ValueError)
    assert issubclass(SmokePredictError, ValueError)


@pytest.mark.parametrize(
    "model",
    [
        LogisticRegression().fit(X, Y),
        LinearRegression().fit(XR, YR),
        SVC().fit(X, Y),
        RandomForestClassifier(n_estimators=2, random_state=0).fit(FRAME, Y),
    ],
    ids=["classifier", "regressor", "svc_no_proba", "dataframe"],
)
def test_smoke_predict_passes(model):
    smoke_predict(model, describe(model)["input_schema"])


def test_smoke_predict_wrong_width_fails_clearly():
    model = LogisticRegression().fit(X, Y)
    with pytest.raises(SmokePredictError, match="a probe row: ValueError: X has 2 features"):
        smoke_predict(model, {"n_features": 2, "feature_names": None})


@pytest.mark.parametrize("handle_unknown", ["error", "ignore"])
def test_smoke_predict_uses_a_known_category_for_encoded_columns(handle_unknown):
    # 0.0 in a column an encoder fitted on strings fails even with handle_unknown="ignore".
    frame = FRAME.assign(city=np.array(["paris", "oslo"])[Y], size=np.array(["S", "L"])[Y])
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("encode", OneHotEncoder(handle_unknown=handle_unknown)),
        ]
    )
    encode = ColumnTransformer(
        [("num", StandardScaler(), ["age", "income"]), ("cat", categorical, ["size", "city"])],
        remainder="passthrough",
    )
    model = Pipeline([("prep", encode), ("clf", LogisticRegression())]).fit(frame, Y)
    smoke_predict(model, describe(model)["input_schema"])


class _BrokenModel(LogisticRegression):
    def predict(self, X):
        raise RuntimeError("boom")


class _TooManyRows(LinearRegression):
    def predict(self, X):
        return np.zeros(2)


def test_smoke_predict_reports_the_failure():
    model = _BrokenModel().fit(X, Y)
    with pytest.raises(SmokePredictError, match="a probe row: RuntimeError: boom"):
        smoke_predict(model, describe(model)["input_schema"])
    model = _TooManyRows().fit(XR, YR)
    with pytest.raises(SmokePredictError, match="answered 2 rows for 1"):
        smoke_predict(model, describe(model)["input_schema"])
