"""Typed models compiled to ONNX with one input per column (workers/validation/compile.py), no
worker: served by ONNX Runtime only where it answers as scikit-learn does on held-out rows with
missing values and unseen categories, and kept on scikit-learn, with the reason, where not."""

from __future__ import annotations

import timeit

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from shared import onnx_graph
from shared.config import Settings
from shared.jobs import inputs
from workers.runtimes.onnx import OnnxRuntime
from workers.runtimes.sklearn import SklearnRuntime
from workers.validation.compile import compile_model
from workers.validation.equivalence import typed_probes
from workers.validation.introspect import describe, smoke_predict

pytestmark = pytest.mark.no_db
SETTINGS = Settings()
RNG = np.random.default_rng(11)
N = 300
FRAME = pd.DataFrame(
    {
        "age": RNG.normal(40, 12, N).round(1),
        "city": RNG.choice(["Oslo", "Rome", "Lima"], N),
        "income": RNG.normal(50_000, 9_000, N).round(),
        "vip": RNG.choice([True, False], N),
    }
)
FRAME.loc[::7, "age"] = np.nan
LABELS = np.where((FRAME["city"] == "Oslo") ^ (FRAME["age"].fillna(40) > 42), "yes", "no")
# Held out: missing numbers and strings, an unseen city, the text "nan" (ONNX is fed a missing
# string as that text: the runtime must keep the two apart).
HELD_OUT = [
    [31.0, "Oslo", 42_000.0, True],
    [None, "Rome", 61_000.0, False],
    [55.5, None, 38_000.0, True],
    [None, None, None, None],
    [47.0, "Paris", 52_000.0, True],
    [23.0, "nan", 47_500.0, False],
]


def _typed_pipeline():
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "vip"]),
        ]
    )
    return make_pipeline(pre, LogisticRegression()).fit(FRAME, LABELS)


def _validated(model, sample=None):
    meta = describe(model)
    smoke_predict(model, meta["input_schema"], sample)
    return meta


def _frame(meta, rows):
    return inputs.to_frame(inputs.table(rows, meta["input_schema"]["columns"]))


@pytest.fixture(scope="module")
def typed():
    model = _typed_pipeline()
    meta = _validated(model)
    compiled = compile_model(model, meta, None, SETTINGS)
    return model, meta, compiled


def test_a_typed_pipeline_is_served_by_onnx_with_scikit_learns_answers(typed):
    model, meta, compiled = typed
    assert compiled.info["status"] == "compiled", compiled.reason
    assert "one per column" in compiled.reason and "missing values" in compiled.reason
    assert not compiled.info.get("refuses_missing")
    onnx = OnnxRuntime.from_bytes(compiled.data)
    graph = onnx_graph.parse(compiled.data)
    assert onnx_graph.column_inputs(graph) == [
        ("age", "float32"),
        ("city", "str"),
        ("income", "float32"),
        ("vip", "int64"),
    ]  # ONNX Runtime has no double Imputer: the float candidate won
    sklearn = SklearnRuntime(model, meta["input_schema"]["feature_names"])
    held_out = _frame(meta, HELD_OUT)
    assert onnx.predict(held_out) == sklearn.predict(held_out)
    (p_onnx, c_onnx), (p_sk, c_sk) = onnx.predict_proba(held_out), sklearn.predict_proba(held_out)
    assert c_onnx == c_sk == ["no", "yes"]
    np.testing.assert_allclose(p_onnx, p_sk, atol=SETTINGS.onnx_proba_atol, rtol=0)
    # The local frame a user builds answers the same as the job's frame.
    local = pd.DataFrame(HELD_OUT, columns=list(FRAME.columns)).astype({"age": "float64"})
    np.testing.assert_allclose(model.predict_proba(local), p_sk, rtol=1e-12)


def test_probe_rows_cover_categories_unseen_values_and_missing_values(typed):
    model, meta, _ = typed
    probes = typed_probes(model, meta["input_schema"], [HELD_OUT[0]])
    cities = {row[1] for row in probes.rows}
    assert {"Oslo", "Rome", "Lima", "nan"} <= cities and len(cities) == 5  # + one unseen
    assert {row[3] for row in probes.rows} == {True, False}
    assert all(None not in row for row in probes.rows)
    assert probes.rows[0] == HELD_OUT[0]  # the sample's row first
    ages = np.array([row[0] for row in probes.rows[-256:]])
    assert abs(ages.mean() - 40) < 3 and 8 < ages.std() < 16  # the scaler's scale
    assert [c["nullable"] for c in meta["input_schema"]["columns"]] == [True] * 4
    for i in range(4):  # every column is missing somewhere, and not everywhere
        assert any(row[i] is None for row in probes.missing)
        assert any(row[i] is not None for row in probes.missing)


def _forest(frame):
    pre = ColumnTransformer(
        [("num", "passthrough", ["age"]), ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])]
    )
    model = make_pipeline(pre, RandomForestClassifier(n_estimators=10, random_state=0))
    return model.fit(frame[["age", "city"]], LABELS)


def test_a_graph_that_answers_missing_values_otherwise_loses():
    """A forest fitted without missing ages sends one down its larger branch in scikit-learn,
    and elsewhere in ONNX Runtime: rows without missing values agree, and the candidate still
    loses (a numeric model would be served with nulls refused; a typed model's nulls are too
    common for that)."""
    model = _forest(FRAME.fillna({"age": 40.0}))
    meta = _validated(model)
    assert meta["input_schema"]["columns"][0]["nullable"]
    compiled = compile_model(model, meta, None, SETTINGS)
    assert compiled.data is None and compiled.info["status"] == "fallback"
    assert "on rows with missing values, ONNX Runtime changed" in compiled.reason


def test_a_graph_that_cannot_tell_the_text_nan_from_a_missing_string_loses():
    """Read with keep_default_na=False, "nan" is a city like any other; ONNX Runtime is fed a
    missing string as that text and the text itself as an unseen one: no equivalent graph."""
    frame = FRAME.fillna({"age": 40.0}).astype({"city": object})
    frame.loc[frame.index % 3 == 0, "city"] = "nan"
    model = _forest(frame)
    meta = _validated(model)
    assert "nan" in meta["input_schema"]["columns"][1]["categories"]
    compiled = compile_model(model, meta, None, SETTINGS)
    assert compiled.data is None and compiled.info["status"] == "fallback"
    assert "probabilities differ" in compiled.reason, compiled.reason


def test_a_pipeline_skl2onnx_cannot_convert_keeps_scikit_learn_with_the_reason():
    frame = FRAME.assign(note=RNG.choice(["great food", "slow service", "noisy"], N))
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["income"]),
            ("text", TfidfVectorizer(token_pattern=r"[a-z]{3,}"), "note"),
        ]
    )
    model = make_pipeline(pre, LogisticRegression()).fit(frame[["income", "note"]], LABELS)
    compiled = compile_model(model, _validated(model), None, SETTINGS)
    assert compiled.data is None and compiled.info["status"] == "fallback"
    # skl2onnx tokenizes with com.microsoft's Tokenizer, which the graph checks refuse.
    assert "custom operator domains are not allowed: com.microsoft" in compiled.reason


def test_a_numeric_pipeline_selecting_columns_by_name_compiles_one_input_per_column():
    frame = FRAME[["age", "income"]].fillna(40.0)
    pre = ColumnTransformer([("num", StandardScaler(), ["income", "age"])])
    model = make_pipeline(pre, LogisticRegression()).fit(frame, LABELS)
    compiled = compile_model(model, _validated(model), None, SETTINGS)
    assert compiled.info["status"] == "compiled", compiled.reason
    assert "Unable to find column name" in compiled.reason or "one per column" in compiled.reason
    onnx = OnnxRuntime.from_bytes(compiled.data)
    rows = RNG.normal([40, 50_000], [12, 9_000], size=(50, 2))  # jobs bring a float64 matrix
    assert onnx.predict(rows) == SklearnRuntime(model, ["age", "income"]).predict(rows)


def test_one_row_speed_of_the_typed_paths(typed, capsys):
    """Not a bound, a record: one-row predict through each runtime, in process."""
    model, meta, compiled = typed
    row = _frame(meta, [HELD_OUT[2]])
    sklearn = SklearnRuntime(model, meta["input_schema"]["feature_names"])
    onnx = OnnxRuntime.from_bytes(compiled.data)
    timings = {}
    for name, runtime in (("sklearn", sklearn), ("onnx", onnx)):
        runtime.predict_proba(row)
        calls = 30
        timings[name] = (
            min(timeit.repeat(lambda r=runtime: r.predict_proba(row), number=calls, repeat=3))
            / calls
        )
    with capsys.disabled():
        us = {name: round(seconds * 1e6) for name, seconds in timings.items()}
        print(f"\n1-row predict_proba (us): {us}")
    assert timings["onnx"] < timings["sklearn"]
