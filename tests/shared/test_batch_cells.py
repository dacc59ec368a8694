"""A batch chunk's cells as model input: a cell the model would refuse fails its own row (the
first problem of the row, by column), the others convert as pandas.read_csv would read them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from shared.batches.cells import convert

pytestmark = pytest.mark.no_db

SCHEMA = {
    "n_features": 4,
    "feature_names": ["age", "rooms", "city", "member"],
    "columns": [
        {"name": "age", "dtype": "number", "nullable": True},
        {"name": "rooms", "dtype": "integer", "nullable": False},
        {
            "name": "city",
            "dtype": "string",
            "nullable": True,
            "categories": ["Oslo", "Rome"],
            "refuses_unknown": True,
        },
        {"name": "member", "dtype": "boolean", "nullable": True},
    ],
}


def test_text_cells_fail_their_own_rows():
    chunk = pa.table(
        {
            "age": ["41.5", "", "x", "1e3", "inf", "2"],
            "rooms": ["2", "3", "3", "1e30", "2", "2.5"],
            "city": ["Oslo", "NA", "Rome", "Rome", "Oslo", "Lima"],
            "member": ["true", "FALSE", "", "maybe", "true", "true"],
        }
    )
    cells = convert(chunk, SCHEMA)
    assert cells.errors.tolist() == [
        "",
        "",
        "age: expected a number",
        "rooms: expected an integer",
        "age: infinite values are not accepted",
        "rooms: expected an integer",
    ]
    frame = cells.model_input
    assert frame["rooms"].tolist() == [2, 3]
    assert frame["city"].tolist()[0] == "Oslo" and np.isnan(frame["city"].tolist()[1])
    assert np.isnan(frame["age"][1]) and frame["member"].tolist() == [True, False]


def test_typed_parquet_columns_and_missing_where_not_nullable():
    chunk = pa.table(
        {
            "age": pa.array([30.0, None, 2.0]),
            "rooms": pa.array([1, None, 4]),
            "city": pa.array(["Rome", None, "Oslo"]),
            "member": pa.array([None, True, False]),
        }
    )
    cells = convert(chunk, SCHEMA)
    assert cells.errors.tolist() == ["", "rooms: missing value", ""]
    assert cells.valid.tolist() == [True, False, True]
