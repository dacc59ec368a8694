"""What validation records per input column: dtype from the encoders and vectorizers (or the
sample), nullable and refused unknown categories found by probing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from workers.validation.introspect import SmokePredictError, describe, smoke_predict

pytestmark = pytest.mark.no_db

RNG = np.random.default_rng(7)
N = 120
FRAME = pd.DataFrame(
    {
        "age": RNG.normal(40, 10, N),
        "rooms": RNG.integers(1, 4, N),
        "city": RNG.choice(["Oslo", "Rome", "Lima"], N),
        "note": RNG.choice(["quiet street", "busy road", "near park"], N),
        "member": RNG.choice([True, False], N),
    }
)
FRAME.loc[::9, "age"] = np.nan
Y = (RNG.random(N) > 0.5).astype(int)


def _columns(model, sample=None) -> dict[str, dict]:
    schema = describe(model)["input_schema"]
    smoke_predict(model, schema, sample)
    return {c["name"]: c for c in schema["columns"]}


def test_a_realistic_pipeline():
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["age"]),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
                ),
                ["city"],
            ),
            ("txt", TfidfVectorizer(), "note"),
            ("rooms", OneHotEncoder(), ["rooms"]),
            ("flag", OrdinalEncoder(), ["member"]),
        ]
    )
    model = make_pipeline(pre, LogisticRegression()).fit(FRAME, Y)
    columns = _columns(model)
    assert columns["age"] == {"name": "age", "dtype": "number", "nullable": True}
    assert columns["city"] == {
        "name": "city",
        "dtype": "string",
        "nullable": True,
        "categories": ["Lima", "Oslo", "Rome"],
    }
    assert columns["note"] == {"name": "note", "dtype": "string", "nullable": False}
    assert columns["rooms"]["dtype"] == "integer"
    assert columns["rooms"]["categories"] == [1, 2, 3]
    assert columns["rooms"]["refuses_unknown"] is True  # handle_unknown="error"
    assert columns["member"]["dtype"] == "boolean"


def test_native_missing_values_and_none():
    numbers = FRAME[["age", "rooms"]]
    assert all(
        c["nullable"]
        for c in _columns(HistGradientBoostingClassifier(max_iter=5).fit(numbers, Y)).values()
    )
    plain = make_pipeline(StandardScaler(), LogisticRegression()).fit(numbers.fillna(0), Y)
    assert not any(c["nullable"] for c in _columns(plain).values())


def test_only_the_imputed_route_is_nullable():
    pre = make_column_transformer(
        (SimpleImputer(), ["age"]), ("passthrough", ["rooms"]), remainder="drop"
    )
    model = make_pipeline(pre, LogisticRegression()).fit(FRAME, Y)
    columns = _columns(model)
    assert columns["age"]["nullable"] and not columns["rooms"]["nullable"]


def test_unnamed_models_get_scikit_learn_column_names():
    model = LogisticRegression().fit(RNG.normal(size=(30, 3)), Y[:30])
    assert list(_columns(model)) == ["x0", "x1", "x2"]


def test_the_sample_names_a_column_no_encoder_reads():
    frame = FRAME[["age", "member"]].fillna(0)
    model = LogisticRegression().fit(frame, Y)
    assert _columns(model)["member"]["dtype"] == "number"
    sample = [{"age": 30.0, "member": True}]
    assert _columns(model, sample)["member"]["dtype"] == "boolean"


def test_a_model_that_cannot_answer_its_probe_is_refused():
    class Broken(LogisticRegression):
        def predict(self, X):
            raise RuntimeError("no")

    with pytest.raises(SmokePredictError, match="a probe row: RuntimeError: no"):
        _columns(Broken().fit(FRAME[["rooms"]], Y))
