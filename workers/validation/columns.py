"""What each input column of a scikit-learn model takes, found at validation.

A column's dtype comes from what reads it: an encoder's categories (strings, integers, booleans),
a text vectorizer (strings), else the upload's sample, else a number. Whether the model answers a
missing value there, and whether it refuses a category it never saw, are found by predicting
probe rows through the serving runtime, not guessed from the classes: an imputer, a model that
takes NaN natively or an encoder told to ignore unknown values all show up the same way, as an
answer.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import FeatureUnion, Pipeline

from shared.jobs import inputs
from workers.runtimes.sklearn import SklearnRuntime

_TEXT_VECTORIZERS = (CountVectorizer, HashingVectorizer, TfidfVectorizer)
# Categories kept per column (the edge checks values against them); a column with more keeps
# none, and an unknown value there is left to the model.
MAX_CATEGORIES = 1000
# A route (the columns one transformer reads) that does not take missing values as a whole is
# probed column by column up to this width; a wider one is recorded as not nullable.
PER_COLUMN_PROBES = 64
# A value no encoder has seen, for the unknown-category probe.
UNSEEN_TEXT = "\x00unseen category"


class Probe:
    """Predict rows of plain values (None for a missing value) as a job would: through the
    typed-rows conversion and the scikit-learn runtime."""

    def __init__(self, estimator: Any, input_schema: dict[str, Any], has_proba: bool) -> None:
        self.runtime = SklearnRuntime(estimator, input_schema.get("feature_names"))
        self.columns: list[dict[str, Any]] = input_schema["columns"]
        self.has_proba = has_proba

    def model_input(self, rows: list[list[Any]]) -> Any:
        if inputs.is_typed(self.columns):
            return inputs.to_frame(inputs.table(rows, self.columns))
        return np.asarray(rows, dtype=np.float64)  # None becomes NaN

    def predict(self, rows: list[list[Any]]) -> list[Any]:
        """The model's answers (and its probabilities, which jobs may ask for); raises what the
        model raises."""
        model_input = self.model_input(rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "unknown categories", "X has feature names", ...
            answers = self.runtime.predict(model_input)
            if self.has_proba:
                self.runtime.predict_proba(model_input)
        if len(answers) != len(rows):
            raise ValueError(f"the model answered {len(answers)} rows for {len(rows)}")
        return answers

    def answers(self, rows: list[list[Any]]) -> bool:
        try:
            self.predict(rows)
        except (SoftTimeLimitExceeded, MemoryError):
            raise
        except Exception:
            return False
        return True


def declared_columns(
    estimator: Any, input_schema: dict[str, Any], sample_rows: list[list[Any]]
) -> list[dict[str, Any]]:
    """Each column's name, dtype and categories, before probing (nullable False for now).
    `sample_rows` are the upload's sample in feature order (may be empty)."""
    n = int(input_schema["n_features"])
    names = input_schema.get("feature_names") or [f"x{i}" for i in range(n)]
    readers: dict[int, Any] = {}
    for indices, leaf in _leaves(estimator, list(range(n))):
        for i, reader in zip(indices, _reads(leaf, len(indices)), strict=True):
            if reader is not None:
                readers.setdefault(i, reader)
    columns = []
    for i, name in enumerate(names):
        seen = [row[i] for row in sample_rows if i < len(row) and row[i] is not None]
        columns.append(_column(str(name), readers.get(i), seen))
    return columns


def probe_columns(probe: Probe, base: list[Any], estimator: Any) -> None:
    """Set `nullable` and `refuses_unknown` on the probe's columns by predicting variants of
    `base` (a row the model answers)."""
    n = len(probe.columns)
    routes = [indices for indices, _ in _leaves(estimator, list(range(n)))] or [list(range(n))]
    nullable = _nullable(probe, base, routes)
    for column, takes_null in zip(probe.columns, nullable, strict=True):
        column["nullable"] = takes_null
    _find_refusals(probe, base)


def base_row(columns: list[dict[str, Any]], sample_rows: list[list[Any]]) -> list[Any]:
    """A plausible row: the sample's first values where it has them, else a known category,
    some text, false, or zero."""
    row = []
    for i, column in enumerate(columns):
        given = next((r[i] for r in sample_rows if i < len(r) and r[i] is not None), None)
        row.append(given if given is not None else _default(column))
    return row


def probe_rows(columns: list[dict[str, Any]], base: list[Any]) -> list[list[Any]]:
    """The rows a model must answer to be `ready`: the base row, the same with every nullable
    column missing, and one with other known categories and numbers."""
    missing = [None if c["nullable"] else v for c, v in zip(columns, base, strict=True)]
    other = [_other(c, v) for c, v in zip(columns, base, strict=True)]
    return [base, missing, other]


def _column(name: str, reader: Any, seen: list[Any]) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "dtype": "number", "nullable": False}
    if isinstance(reader, list):  # an encoder's categories
        known = [v for v in reader if not _is_missing(v)]
        column["dtype"] = _dtype_of(known)
        if len(known) <= MAX_CATEGORIES:
            column["categories"] = known
    elif reader == "text":
        column["dtype"] = "string"
    elif seen:
        column["dtype"] = _dtype_of(seen, integers_are_numbers=True)
    return column


def _dtype_of(values: list[Any], integers_are_numbers: bool = False) -> str:
    kinds = {type(v) for v in values}
    if kinds and kinds <= {bool}:
        return "boolean"
    if kinds and kinds <= {int} and not integers_are_numbers:
        return "integer"
    if kinds <= {int, float}:
        return "number"
    return "string"


def _leaves(part: Any, indices: list[int]) -> Iterator[tuple[list[int], Any]]:
    """(input columns, the transformer or estimator that first reads them) for every route a
    column takes into the model: through ColumnTransformers, FeatureUnions, and a pipeline's
    first step (past imputers, which keep columns as they are)."""
    if isinstance(part, ColumnTransformer):
        resolved = getattr(part, "_transformer_to_input_indices", {})
        for name, transformer, _ in getattr(part, "transformers_", []):
            if transformer == "drop":
                continue
            own = [indices[i] for i in resolved.get(name, []) if i < len(indices)]
            if own:
                yield from _leaves(None if transformer == "passthrough" else transformer, own)
    elif isinstance(part, FeatureUnion):
        for _, transformer in part.transformer_list:
            if transformer not in ("drop", None):
                yield from _leaves(transformer, indices)
    elif isinstance(part, Pipeline):
        steps = [s for _, s in part.steps if s is not None and s != "passthrough"]
        first = next((s for s in steps if not isinstance(s, SimpleImputer)), None)
        yield from _leaves(first, indices)
    else:
        yield indices, part


def _reads(leaf: Any, width: int) -> list[Any]:
    """Per column of a leaf: its categories (a list), "text", or None (numbers)."""
    categories = getattr(leaf, "categories_", None)
    if isinstance(categories, list) and len(categories) == width:
        return [_json_safe(np.asarray(c, dtype=object).tolist()) for c in categories]
    if isinstance(leaf, _TEXT_VECTORIZERS):
        return ["text"] * width
    return [None] * width


def _nullable(probe: Probe, base: list[Any], routes: list[list[int]]) -> list[bool]:
    """Group testing: all columns missing at once, then each route as a whole, then (for a route
    that fails) its columns one by one. A column shared by routes takes a missing value only if
    every route does."""
    n = len(base)
    if probe.answers([_with(base, range(n), None)]):
        return [True] * n
    verdict: dict[int, bool] = {}
    for route in routes:
        if probe.answers([_with(base, route, None)]):
            for i in route:
                verdict.setdefault(i, True)
        elif len(route) <= PER_COLUMN_PROBES:
            for i in route:
                verdict[i] = verdict.get(i, True) and probe.answers([_with(base, [i], None)])
        else:
            verdict.update(dict.fromkeys(route, False))
    return [verdict.get(i, False) for i in range(n)]


def _find_refusals(probe: Probe, base: list[Any]) -> None:
    """`refuses_unknown` on columns with categories, when an unseen value makes the model raise
    (OneHotEncoder's handle_unknown="error", the default)."""
    encoded = [
        i
        for i, c in enumerate(probe.columns)
        if c.get("categories") is not None and c["dtype"] != "boolean"
    ]
    unseen = {i: _unseen(probe.columns[i]) for i in encoded}
    if not encoded or probe.answers([_with_values(base, unseen)]):
        return
    for i in encoded[:PER_COLUMN_PROBES]:
        if not probe.answers([_with_values(base, {i: unseen[i]})]):
            probe.columns[i]["refuses_unknown"] = True


def _with(row: list[Any], indices: Any, value: Any) -> list[Any]:
    return _with_values(row, dict.fromkeys(indices, value))


def _with_values(row: list[Any], values: dict[int, Any]) -> list[Any]:
    return [values.get(i, v) for i, v in enumerate(row)]


def _default(column: dict[str, Any]) -> Any:
    if column.get("categories"):
        return column["categories"][0]
    return {"string": "text", "boolean": False, "integer": 0}.get(column["dtype"], 0.0)


def _other(column: dict[str, Any], value: Any) -> Any:
    if column.get("categories"):
        return column["categories"][-1]
    if column["dtype"] == "number" and isinstance(value, int | float):
        return float(value) + 1.0
    return value


def _unseen(column: dict[str, Any]) -> Any:
    if column["dtype"] == "string":
        return UNSEEN_TEXT
    numbers = [v for v in column["categories"] if isinstance(v, int | float)]
    step = 1 if column["dtype"] == "integer" else 0.5
    return max(numbers, default=0) + step


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _json_safe(values: list[Any]) -> list[Any]:
    """numpy scalars inside an object array's list to plain Python values."""
    return [v.item() if isinstance(v, np.generic) else v for v in values]
