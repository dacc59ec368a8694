"""Prediction rows checked against the model's recorded input schema (its columns).

The web tier refuses here, as a 422 naming the offending row and column, everything a worker
could choke on, before a job row exists; model validation checks an upload's sample with the same
rules, so a sample that validates is one the service takes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from itertools import chain
from typing import Any

import numpy as np

from shared.errors import ValidationFailed
from shared.features import FeatureMismatch, in_feature_order
from shared.jobs import inputs as job_inputs
from shared.jobs.inputs import Rows

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _fail(message: str, row: int, column: int | str | None = None) -> ValidationFailed:
    details: dict[str, Any] = {"row": row}
    if column is not None:
        details["column"] = column
    return ValidationFailed(message, code="invalid_input", details=details)


def _number(value: Any, row: int, column: int | str) -> float:
    # bool is an int subclass in Python; true/false is not a feature value.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"expected a number, got {_kind(value)}", row, column)
    try:
        number = float(value)
    except OverflowError:  # JSON integers have no size limit; floats do
        raise _fail("number out of range", row, column) from None
    if not math.isfinite(number):
        raise _fail("NaN and infinite values are not accepted", row, column)
    return number


def _integer(value: Any, row: int, column: int | str) -> int:
    number = _number(value, row, column)
    if not number.is_integer() or abs(number) > _INT64_MAX:
        raise _fail(f"expected an integer, got {value!r}", row, column)
    return int(number)


def _string(value: Any, row: int, column: int | str) -> str:
    if not isinstance(value, str):
        raise _fail(f"expected a string, got {_kind(value)}", row, column)
    return value


def _boolean(value: Any, row: int, column: int | str) -> bool:
    if not isinstance(value, bool):
        raise _fail(f"expected true or false, got {_kind(value)}", row, column)
    return value


_CHECKS = {"number": _number, "integer": _integer, "string": _string, "boolean": _boolean}
_INT64_MAX = 2**63 - 1


def _kind(value: Any) -> str:
    names = {bool: "a boolean", str: "a string", int: "a number", float: "a number"}
    return names.get(type(value), "null" if value is None else type(value).__name__)


def _ordered(row: dict[str, Any], names: list[str], index: int) -> list[Any]:
    try:
        return in_feature_order(row, names)
    except FeatureMismatch as mismatch:
        raise ValidationFailed(
            str(mismatch),
            code="invalid_input",
            details={
                "row": index,
                "missing": mismatch.missing[:20],
                "unexpected": mismatch.unexpected[:20],
            },
        ) from None


def _numeric_matrix(inputs: list[Any], n_features: int) -> np.ndarray | None:
    """The common case checked in bulk (a 100,000-row request in tens of milliseconds rather than
    seconds): lists of the right width holding only finite ints and floats. None sends the input
    down the row-by-row path, which names the offending row and column."""
    if not all(type(row) is list and len(row) == n_features for row in inputs):
        return None
    if not set(map(type, chain.from_iterable(inputs))) <= {int, float}:
        return None  # bool, str, None, nested values...
    try:
        matrix = np.asarray(inputs, dtype=np.float64)
    except OverflowError:
        return None
    if not np.isfinite(matrix).all():
        return None
    return matrix


def input_columns(input_schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's columns; for a model validated before columns were recorded, its features as
    numbers that take no missing value (what its rows always were)."""
    columns = input_schema.get("columns")
    if columns:
        return columns
    n = int(input_schema.get("n_features") or 0)
    names = input_schema.get("feature_names") or [f"x{i}" for i in range(n)]
    return [{"name": name, "dtype": "number", "nullable": False} for name in names]


def normalise_rows(inputs: list[Any], input_schema: dict[str, Any], max_rows: int) -> Rows:
    """The rows in the model's feature order: a float64 matrix for a model of numbers (NaN for a
    null where the column takes it), typed columns for the others (shared/jobs/inputs.py); 422
    naming the row and column for anything the model would refuse."""
    if not 1 <= len(inputs) <= max_rows:
        raise ValidationFailed(
            f"inputs must have 1..{max_rows} rows (MAX_ROWS_PER_REQUEST)",
            code="invalid_input",
            details={"rows": len(inputs)},
        )
    columns = input_schema.get("columns")
    if job_inputs.is_typed(columns):
        return job_inputs.table(_typed_values(inputs, input_schema, columns), columns)
    matrix = _matrix(inputs, input_schema)
    names = input_schema.get("feature_names")
    if input_schema.get("float32"):
        _check_float32(matrix, names)
    for j, column in enumerate(columns or ()):
        if column.get("refuses_unknown"):
            _check_known(matrix[:, j], column["categories"], names[j] if names else j)
    return matrix


def _matrix(inputs: list[Any], input_schema: dict[str, Any]) -> np.ndarray:
    n_features = input_schema["n_features"]
    fast = _numeric_matrix(inputs, n_features)
    if fast is not None:
        return fast
    names = input_schema.get("feature_names")
    nullable = [c["nullable"] for c in input_schema.get("columns") or ()] or [False] * n_features
    out = []
    for i, row in enumerate(_rows(inputs, input_schema)):
        values = []
        for j, value in enumerate(row):
            column = names[j] if names else j
            if value is None:
                _check_null(nullable[j], i, column)
                values.append(math.nan)
            else:
                values.append(_number(value, i, column))
        out.append(values)
    return np.asarray(out, dtype=np.float64)


def _typed_values(
    inputs: list[Any], input_schema: dict[str, Any], columns: list[dict[str, Any]]
) -> list[list[Any]]:
    """Each value checked against its column: its type, a null only where the model takes one,
    a category the model knows where it refuses others, float32's range where it casts."""
    names = input_schema.get("feature_names")
    checks = [_column_check(column, bool(input_schema.get("float32"))) for column in columns]
    out = []
    for i, row in enumerate(_rows(inputs, input_schema)):
        out.append(
            [
                check(value, i, names[j] if names else j)
                for j, (check, value) in enumerate(zip(checks, row, strict=True))
            ]
        )
    return out


def _column_check(column: dict[str, Any], float32: bool) -> Any:
    check = _CHECKS[column["dtype"]]
    known = set(column.get("categories") or ()) if column.get("refuses_unknown") else None
    nullable = bool(column["nullable"])

    def checked(value: Any, row: int, name: int | str) -> Any:
        if value is None:
            _check_null(nullable, row, name)
            return None
        value = check(value, row, name)
        if known is not None and value not in known:
            raise _fail(_unknown_category(value), row, name)
        if float32 and column["dtype"] == "number" and abs(value) > _FLOAT32_MAX:
            raise _fail(_BEYOND_FLOAT32, row, name)
        return value

    return checked


def _check_null(nullable: bool, row: int, column: int | str) -> None:
    if not nullable:
        raise _fail("missing value (null): this model needs a value in this column", row, column)


def _rows(inputs: list[Any], input_schema: dict[str, Any]) -> Iterator[list[Any]]:
    """Each row as a list in feature order, of the model's width."""
    n_features = input_schema["n_features"]
    names = input_schema.get("feature_names")
    for i, row in enumerate(inputs):
        if isinstance(row, dict):
            if not names:
                raise _fail("this model has no feature names: send rows as lists", i)
            row = _ordered(row, names, i)
        if not isinstance(row, list):
            raise _fail("each row must be a list or an object", i)
        if len(row) != n_features:
            raise _fail(f"each row needs exactly {n_features} features, got {len(row)}", i)
        yield row


def _check_known(values: np.ndarray, categories: list[Any], column: int | str) -> None:
    """A numeric column an encoder reads, refusing values it did not see (NaN is a missing
    value, already checked)."""
    unknown = ~np.isin(values, categories) & ~np.isnan(values)
    if unknown.any():
        row = int(np.argmax(unknown))
        raise _fail(_unknown_category(values[row].item()), row, column)


def _unknown_category(value: Any) -> str:
    return f"unknown category {value!r}: this model refuses values it was not trained on"


_BEYOND_FLOAT32 = "number beyond float32 range (±3.4e38), which this model refuses"


def _check_float32(matrix: np.ndarray, names: list[str] | None) -> None:
    """A model recorded as casting its input to float32 (scikit-learn's trees) refuses numbers
    beyond it; the service refuses them too, whichever runtime serves the model (ONNX Runtime
    would answer them as infinity)."""
    beyond = np.abs(matrix) > _FLOAT32_MAX
    if beyond.any():
        row, column = (int(i) for i in np.argwhere(beyond)[0])
        raise _fail(_BEYOND_FLOAT32, row, names[column] if names else column)
