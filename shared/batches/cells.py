"""A chunk's cells as model input, column by column, with the rules of a request's rows
(shared/jobs/checks.py) applied per row: a cell the model would refuse fails its row (its
`error`), never the chunk.

Cells arrive as text (a CSV) or typed (a Parquet file). Text is read as pandas.read_csv reads
it: an empty cell, or one of its usual missing-value markers, is a missing value; numbers in any
notation float() takes; booleans as true/false.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shared.jobs import inputs
from shared.jobs.checks import input_columns

# The strings pandas.read_csv reads as missing by default (the common ones).
MISSING_TEXT = [
    "",
    "NA",
    "N/A",
    "n/a",
    "NaN",
    "nan",
    "-nan",
    "NULL",
    "null",
    "None",
    "<NA>",
    "#N/A",
]
_TRUE, _FALSE = {"true", "True", "TRUE", "1"}, {"false", "False", "FALSE", "0"}
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT64_LIMIT = 2.0**63


@dataclass
class Cells:
    """The chunk's valid rows as model input, and one error text per chunk row ("" if ok)."""

    model_input: Any  # a float64 matrix, or a typed frame (shared/jobs/inputs.py)
    valid: np.ndarray  # bool per chunk row
    errors: np.ndarray  # object array of str per chunk row


def convert(chunk: pa.Table, input_schema: dict[str, Any]) -> Cells:
    """The model's columns of `chunk` (named as its input columns) checked and converted."""
    columns = input_columns(input_schema)
    n = chunk.num_rows
    errors = np.full(n, "", dtype=object)
    values = []
    for column in columns:
        converted, problems = _column(chunk.column(column["name"]), column, input_schema)
        _note(errors, problems, column["name"])
        values.append(converted)
    valid = errors == ""
    return Cells(_model_input(values, columns, valid), valid, errors)


def _note(errors: np.ndarray, problems: pd.Series, name: str) -> None:
    """The first problem of each row wins (as a request's 422 names one column)."""
    found = problems.to_numpy(dtype=object)
    failing = found.astype(bool)  # "" is the only falsy text; cheaper than comparing each
    if not failing.any():
        return
    fresh = (errors == "") & failing
    errors[fresh] = [f"{name}: {text}" for text in found[fresh]]


def _column(
    cells: pa.ChunkedArray, column: dict[str, Any], schema: dict[str, Any]
) -> tuple[pd.Series, pd.Series]:
    """(values with None/NaN for missing, problem text per row)."""
    dtype = column["dtype"]
    if dtype in ("number", "integer"):
        values, problems = _numbers(cells, dtype == "integer", bool(schema.get("float32")))
    elif dtype == "string":
        values, problems = _strings(cells)
    else:
        values, problems = _booleans(cells)
    missing = values.isna()
    if not column["nullable"] and missing.any():
        problems = problems.mask(missing & (problems == ""), "missing value")
    if column.get("refuses_unknown") and column.get("categories") is not None:
        unknown = ~missing & ~values.isin(column["categories"]) & (problems == "")
        problems = problems.mask(unknown, "unknown category")
    return values, problems


def _text(cells: pa.ChunkedArray) -> pa.ChunkedArray:
    """Text cells with pandas' missing-value markers as nulls."""
    return pc.if_else(pc.is_in(cells, value_set=pa.array(MISSING_TEXT)), None, cells)


def _numbers(cells: pa.ChunkedArray, integer: bool, float32: bool) -> tuple[pd.Series, pd.Series]:
    if pa.types.is_string(cells.type) or pa.types.is_large_string(cells.type):
        text = _text(cells)
        try:  # the common case, in C++: every cell parses
            values = pc.cast(text, pa.float64()).to_pandas()
            bad = np.zeros(len(values), dtype=bool)
        except pa.ArrowInvalid:
            raw = text.to_pandas()
            values = pd.to_numeric(raw, errors="coerce").astype("float64")
            bad = (values.isna() & raw.notna()).to_numpy()
    elif pa.types.is_integer(cells.type) or pa.types.is_floating(cells.type):
        values = pc.cast(cells, pa.float64()).to_pandas()
        bad = np.zeros(len(values), dtype=bool)
    else:
        values = pd.Series(np.nan, index=range(len(cells)))
        bad = np.asarray(cells.is_valid().to_pandas(), dtype=bool)
    numbers = values.to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):  # NaN and inf compare and divide as False / NaN
        checks = [
            (bad, "expected a number"),
            (np.isinf(numbers), "infinite values are not accepted"),
        ]
        if integer:  # whole, and within int64 (the column travels as int64)
            whole = (numbers % 1 == 0) & (np.abs(numbers) < _INT64_LIMIT)
            checks.append((~np.isnan(numbers) & ~whole, "expected an integer"))
        if float32:
            checks.append((np.abs(numbers) > _FLOAT32_MAX, "number beyond float32 range"))
    problems, flagged = _first_problems(len(numbers), checks)
    return pd.Series(np.where(flagged, np.nan, numbers), index=values.index), problems


def _first_problems(n: int, checks: list[tuple[np.ndarray, str]]) -> tuple[pd.Series, np.ndarray]:
    """Per row the message of the first check it fails ("" if none), and which rows failed one:
    boolean numpy masks, since comparing and masking object arrays of text per check cost most
    of a clean chunk's conversion."""
    flagged = np.zeros(n, dtype=bool)
    problems = np.full(n, "", dtype=object)
    for failing, message in checks:
        fresh = failing & ~flagged
        if fresh.any():
            problems[fresh] = message
            flagged |= fresh
    return pd.Series(problems, dtype=object), flagged


def _strings(cells: pa.ChunkedArray) -> tuple[pd.Series, pd.Series]:
    if pa.types.is_string(cells.type) or pa.types.is_large_string(cells.type):
        values = _text(cells).to_pandas().astype(object)
        return values.where(values.notna(), None), pd.Series("", index=values.index, dtype=object)
    values = pd.Series(cells.to_pandas(), dtype=object)
    problems = pd.Series("", index=values.index, dtype=object).mask(
        values.notna(), "expected a string"
    )
    return values.where(problems == "", None).where(values.notna(), None), problems


def _booleans(cells: pa.ChunkedArray) -> tuple[pd.Series, pd.Series]:
    if pa.types.is_boolean(cells.type):
        values = pd.Series(cells.to_pandas(), dtype=object)
        return values.where(values.notna(), None), pd.Series("", index=values.index, dtype=object)
    raw = pd.Series(_text(cells.cast(pa.string())).to_pandas(), dtype=object)
    values = raw.map(lambda v: True if v in _TRUE else False if v in _FALSE else None)
    problems = pd.Series("", index=raw.index, dtype=object)
    problems = problems.mask(raw.notna() & values.isna(), "expected true or false")
    return values.astype(object), problems


def _model_input(values: list[pd.Series], columns: list[dict[str, Any]], valid: np.ndarray) -> Any:
    """The valid rows as jobs carry them: a float64 matrix for a model of numbers, else typed
    columns turned into the frame pandas would build."""
    if not inputs.is_typed(columns):
        if not values:
            return np.empty((int(valid.sum()), 0))
        matrix = np.column_stack([v.to_numpy(dtype=np.float64, na_value=np.nan) for v in values])
        return matrix[valid]
    arrays = [
        pa.array(v[valid].tolist(), type=inputs.ARROW_TYPES[c["dtype"]], from_pandas=True)
        for v, c in zip(values, columns, strict=True)
    ]
    table = pa.Table.from_arrays(arrays, names=[c["name"] for c in columns])
    return inputs.to_frame(table)
