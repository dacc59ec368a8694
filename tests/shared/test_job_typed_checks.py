"""Typed rows at the edge: each column's dtype, nulls and categories, refused with the row and
column named; accepted rows become the typed table a worker turns into the local frame."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shared.errors import ValidationFailed
from shared.jobs import inputs
from shared.jobs.checks import normalise_rows

pytestmark = pytest.mark.no_db

COLUMNS = [
    {"name": "age", "dtype": "number", "nullable": True},
    {"name": "rooms", "dtype": "integer", "nullable": False, "categories": [1, 2, 3]},
    {"name": "city", "dtype": "string", "nullable": True, "categories": ["Oslo", "Rome"]},
    {"name": "note", "dtype": "string", "nullable": False},
    {"name": "member", "dtype": "boolean", "nullable": True, "categories": [False, True]},
]
SCHEMA = {"n_features": 5, "feature_names": [c["name"] for c in COLUMNS], "columns": COLUMNS}
GOOD = [41.5, 2, "Oslo", "quiet street", True]


def _refused(row: list | dict, schema: dict = SCHEMA) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as err:
        normalise_rows([GOOD, row], schema, max_rows=10)
    assert err.value.code == "invalid_input"
    return err.value


def test_typed_rows_become_the_frame_pandas_builds():
    as_object = dict(zip(SCHEMA["feature_names"], GOOD, strict=True))
    rows = [GOOD, [None, 3, None, "", None], as_object]
    table = normalise_rows(rows, SCHEMA, max_rows=10)
    got = inputs.decode(inputs.encode(table))
    local = pd.DataFrame(
        [GOOD, [math.nan, 3, math.nan, "", None], GOOD], columns=SCHEMA["feature_names"]
    )
    pd.testing.assert_frame_equal(got, local)
    assert list(got.dtypes.astype(str)) == ["float64", "int64", "str", "str", "object"]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (0, "41", "expected a number, got a string"),
        (0, True, "expected a number, got a boolean"),
        (0, float("inf"), "NaN and infinite"),
        (1, 2.5, "expected an integer"),
        (1, "2", "expected a number, got a string"),
        (1, None, "missing value"),
        (2, 7, "expected a string, got a number"),
        (3, None, "missing value"),
        (3, ["a"], "expected a string, got list"),
        (4, 1, "expected true or false, got a number"),
        (4, "yes", "expected true or false, got a string"),
    ],
)
def test_each_dtype_refuses_the_wrong_kind(column, value, message):
    row = list(GOOD)
    row[column] = value
    err = _refused(row)
    assert message in err.message
    assert err.details == {"row": 1, "column": COLUMNS[column]["name"]}


def test_unknown_category_refused_only_where_the_model_raises():
    schema = {**SCHEMA, "columns": [dict(c) for c in COLUMNS]}
    row = [41.5, 2, "Lima", "x", True]
    assert normalise_rows([row], schema, max_rows=10).num_rows == 1  # ignored by the encoder
    schema["columns"][2]["refuses_unknown"] = True
    err = _refused(row, schema)
    assert "unknown category 'Lima'" in err.message
    assert err.details == {"row": 1, "column": "city"}
    schema["columns"][1]["refuses_unknown"] = True
    assert _refused([41.5, 4, "Rome", "x", True], schema).details["column"] == "rooms"


def test_float32_range_checked_on_typed_number_columns():
    schema = {**SCHEMA, "float32": True}
    err = _refused([1e39, 2, "Oslo", "x", True], schema)
    assert "float32" in err.message and err.details["column"] == "age"


def test_numeric_model_takes_null_only_where_nullable():
    schema = {
        "n_features": 2,
        "feature_names": ["a", "b"],
        "columns": [
            {"name": "a", "dtype": "number", "nullable": True},
            {"name": "b", "dtype": "number", "nullable": False},
        ],
    }
    matrix = normalise_rows([[None, 1.0], {"a": 2, "b": 3}], schema, max_rows=10)
    assert isinstance(matrix, np.ndarray)  # the float64 fast path, NaN for the null
    assert np.isnan(matrix[0, 0]) and matrix[1].tolist() == [2.0, 3.0]
    with pytest.raises(ValidationFailed) as err:
        normalise_rows([[1.0, None]], schema, max_rows=10)
    assert err.value.details == {"row": 0, "column": "b"}


def test_numeric_column_with_closed_categories():
    schema = {
        "n_features": 1,
        "feature_names": None,
        "columns": [
            {
                "name": "x0",
                "dtype": "number",
                "nullable": True,
                "categories": [1.0, 2.0],
                "refuses_unknown": True,
            }
        ],
    }
    assert np.isnan(normalise_rows([[None], [2]], schema, max_rows=10)[0, 0])
    with pytest.raises(ValidationFailed) as err:
        normalise_rows([[1], [2], [2.5]], schema, max_rows=10)
    assert err.value.details == {"row": 2, "column": 0}


def test_typed_rows_round_trip_through_a_queue_entry():
    table = normalise_rows([GOOD, [None, 1, None, "n", False]], SCHEMA, max_rows=10)
    text = inputs.to_text(table)
    assert isinstance(text, str)
    pd.testing.assert_frame_equal(inputs.from_text(text), inputs.to_frame(table))
    assert inputs.text_bytes(text, inputs.from_text(text)) == inputs.encode(table)
