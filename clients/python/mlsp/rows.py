"""Input rows as the API takes them: a list of rows, each a list of values or an object keyed by
feature name; a value is a number, a string, a boolean, or null (a missing value)."""

from __future__ import annotations

import math
from typing import Any

from mlsp.errors import ValidationError

_ROW_TYPES = (list, tuple, dict)
# What a value can be in JSON (lists and objects only to let the server name a nested value).
_JSON_VALUES = (type(None), bool, int, float, str, list, dict)


def as_rows(rows: Any) -> list[Any]:
    """Rows from lists, numpy arrays, pandas DataFrames or Series, ready for JSON: one flat row
    (`[5.1, 3.5, 1.4, 0.2]`, a 1-D array, a Series) is one row; strings and booleans are kept,
    numpy scalars become Python's, NaN and pandas' NA are sent as null (a missing value, for the
    server to accept or refuse per model). A value JSON has no form for (a timestamp, bytes) is
    refused here, naming its row and column."""
    if _is_frame(rows):
        rows = rows.to_dict(orient="records")  # keyed by feature name
    elif _is_series(rows):
        rows = [_series_row(rows)]
    elif hasattr(rows, "tolist"):
        rows = rows.tolist()
    else:
        rows = list(rows)
    if rows and not any(isinstance(row, _ROW_TYPES) for row in rows):
        rows = [rows]
    return [_clean_row(row, i) for i, row in enumerate(rows)]


def chunked(rows: list[Any], size: int) -> list[list[Any]]:
    """`rows` in consecutive chunks of at most `size`, in order."""
    return [rows[start : start + size] for start in range(0, len(rows), size)] or [rows]


def _is_frame(rows: Any) -> bool:
    return hasattr(rows, "columns") and hasattr(rows, "to_dict")


def _is_series(rows: Any) -> bool:
    return hasattr(rows, "index") and hasattr(rows, "to_dict") and not hasattr(rows, "columns")


def _series_row(series: Any) -> Any:
    """A Series with string labels is a row keyed by feature name; otherwise its values."""
    labels = list(series.index)
    if labels and all(isinstance(label, str) for label in labels):
        return series.to_dict()
    return series.tolist()


def _clean_row(row: Any, index: int) -> Any:
    if isinstance(row, dict):
        return {key: _value(v, index, key) for key, v in row.items()}
    if isinstance(row, list | tuple):
        return [_value(v, index, column) for column, v in enumerate(row)]
    return row  # not a row: the server names it in its 422


def _value(value: Any, row: int, column: int | str) -> Any:
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing markers
        return None
    if isinstance(value, str):
        return str(value)  # numpy.str_ too
    if hasattr(value, "item") and not isinstance(value, list | dict):
        value = value.item()  # a numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return None
        raise ValidationError(
            f"row {row}, column {column}: infinite values cannot be sent",
            code="invalid_input",
            details={"row": row, "column": column},
        )
    if not isinstance(value, _JSON_VALUES):
        raise ValidationError(
            f"row {row}, column {column}: a {type(value).__name__} cannot be sent"
            " (send numbers, strings, booleans or null)",
            code="invalid_input",
            details={"row": row, "column": column},
        )
    return value
