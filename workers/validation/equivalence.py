"""Does an ONNX model give scikit-learn's answers? Probe rows, then a strict comparison.

Both sides are called through the serving runtimes themselves (SklearnRuntime, OnnxRuntime), so
what is compared is exactly what a job would return: a float64 matrix for a model of numbers, the
typed frame a job's rows become (shared/jobs/inputs.py) for a model of typed columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from shared.errors import ValidationFailed
from shared.features import in_feature_order
from shared.jobs import checks, inputs
from workers.runtimes.base import ModelRuntime, Rows
from workers.runtimes.onnx import MISSING_STRING
from workers.validation import columns as column_probes

NORMAL_ROWS = 256
SCALED_ROWS = 256
MISSING_ROWS = 64
UNSEEN_ROWS = 16
_SEED = 20261126  # fixed: the same model always gets the same verdict
# Text a vectorizer may meet beside its own words: nothing, capitals, punctuation, accents, and
# the text a missing string is fed to ONNX as (workers/runtimes/onnx.py).
_TEXTS = ("", "Some Words, AND punctuation!", "Très ÉLÉGANT café", MISSING_STRING)


@dataclass
class Verdict:
    equivalent: bool
    reason: str
    rows: int
    max_diff: float | None = None


def probe_rows(estimator: Any, n_features: int, sample: list[list[float]]) -> list[list[float]]:
    """The uploader's rows, a zero row, standard-normal rows, and rows at the scale of a leading
    StandardScaler (its mean ± scale), where the model's real inputs live."""
    rng = np.random.default_rng(_SEED)
    parts = [np.zeros((1, n_features)), rng.standard_normal((NORMAL_ROWS, n_features))]
    stats = _input_scaler(estimator, n_features)
    if stats is not None:
        mean, scale = stats
        parts.append(mean + scale * rng.standard_normal((SCALED_ROWS, n_features)))
    return [list(map(float, r)) for r in sample] + np.vstack(parts).tolist()


def missing_rows(rows: list[list[float]], nullable: list[bool]) -> list[list[float]]:
    """Probe rows missing values (NaN) in the columns that take them, as jobs may send: every
    other nullable column (alternating by row), and one row with all of them missing. Empty
    when no column takes a missing value."""
    mask = np.asarray(nullable, dtype=bool)
    if not mask.any():
        return []
    out = np.asarray(rows[:MISSING_ROWS], dtype=np.float64).copy()
    checker = (np.arange(len(out))[:, None] + np.arange(out.shape[1])) % 2 == 0
    out[checker & mask] = np.nan
    out[0, mask] = np.nan
    return out.tolist()


def numeric_rows(sample: list[Any] | None, names: list[str] | None, n: int) -> list[list[float]]:
    """Sample rows as float lists in the model's feature order; rows that are not all-numeric
    (e.g. strings for an encoder) are left out, since API inputs are numbers anyway."""
    rows = []
    for row in sample or []:
        try:
            floats = np.asarray(in_feature_order(row, names), dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if floats.shape == (n,) and np.isfinite(floats).all():
            rows.append(floats.tolist())
    return rows


@dataclass
class TypedProbes:
    """Probe rows of a model of typed columns, as plain values in feature order (None for a
    missing value): `rows` hold none, `missing` hold some where columns take them."""

    rows: list[list[Any]]
    missing: list[list[Any]]


def typed_probes(
    estimator: Any, input_schema: dict[str, Any], sample: list[Any] | None
) -> TypedProbes:
    """The validation's own probe rows (workers/validation/columns.py) and the sample's, then
    rows built from the recorded columns: every known category, random values at the scale of
    the data, unseen categories (and the text a missing string is fed to ONNX as) where a column
    takes them, and missing values where a column takes them. Only values the service lets
    through to the model (shared/jobs/checks.py): a category the model refuses is never probed."""
    columns = input_schema["columns"]
    given = _sample_values(sample, input_schema)
    full = [row for row in given if None not in row]
    base = column_probes.base_row(columns, full)
    own_base, own_missing, own_other = column_probes.probe_rows(columns, base)
    readers = _readers(estimator, len(columns))
    values = [
        _ColumnValues(column, readers.get(i), [row[i] for row in given], base[i])
        for i, column in enumerate(columns)
    ]
    rng = np.random.default_rng(_SEED)
    random = [[v.draw(rng) for v in values] for _ in range(NORMAL_ROWS)]
    every = [  # each known category at least once
        [v.known[j % len(v.known)] if v.known else x for v, x in zip(values, base, strict=True)]
        for j in range(max(len(v.known) for v in values))
    ]
    unseen = [
        [_alternate(v.unseen, i + j, x) for i, (v, x) in enumerate(zip(values, row, strict=True))]
        for j, row in enumerate(random[:UNSEEN_ROWS])
    ]
    rows = [*full, own_base, own_other, *every, *unseen, *random]
    nullable = [bool(column["nullable"]) for column in columns]
    if not any(nullable):
        return TypedProbes(rows, [])
    given_missing = [row for row in given if None in row]
    return TypedProbes(rows, [*given_missing, own_missing, *_checkered(rows, nullable)])


def _checkered(rows: list[list[Any]], nullable: list[bool]) -> list[list[Any]]:
    """The first rows with every other nullable column missing, alternating by row."""
    return [
        [
            None if takes and (i + j) % 2 == 0 else x
            for i, (takes, x) in enumerate(zip(nullable, row, strict=True))
        ]
        for j, row in enumerate(rows[:MISSING_ROWS])
    ]


def frame(rows: list[list[Any]], columns: list[dict[str, Any]]) -> Rows:
    """The rows as a job brings them to a runtime: the typed frame (shared/jobs/inputs.py)."""
    return inputs.to_frame(inputs.table(rows, columns))


def _alternate(choices: list[Any], k: int, value: Any) -> Any:
    """Every other row, one of `choices` in place of `value` (none: `value` stays)."""
    return choices[k // 2 % len(choices)] if choices and k % 2 else value


def _sample_values(sample: list[Any] | None, input_schema: dict[str, Any]) -> list[list[Any]]:
    """The upload's sample as the service checks it, in feature order (none when refused: the
    validation reports that, not the compiler)."""
    if not sample:
        return []
    try:
        table = checks.normalise_rows(sample, input_schema, len(sample))
    except ValidationFailed:
        return []
    return [list(row) for row in zip(*table.to_pydict().values(), strict=True)]


def _readers(estimator: Any, n_columns: int) -> dict[int, tuple[Any, int]]:
    """Per column: the transformer that first reads it (past imputers) and the column's position
    among those it reads."""
    readers: dict[int, tuple[Any, int]] = {}
    for indices, leaf in column_probes._leaves(estimator, list(range(n_columns))):
        for position, i in enumerate(indices):
            readers.setdefault(i, (leaf, position))
    return readers


class _ColumnValues:
    """What one column's probe values are drawn from: its categories; else a vectorizer's words,
    texts and booleans; else numbers around the data's center."""

    def __init__(
        self,
        column: dict[str, Any],
        reader: tuple[Any, int] | None,
        given: list[Any],
        base: Any,
    ) -> None:
        self.dtype = column["dtype"]
        self.known: list[Any] = list(column.get("categories") or [])
        self.unseen: list[Any] = []
        if self.known and not column.get("refuses_unknown") and self.dtype != "boolean":
            self.unseen = [column_probes._unseen(column)]
            if self.dtype == "string":
                # A graph must read this text as the model does, not as a missing value.
                self.unseen.append(MISSING_STRING)
        leaf, position = reader or (None, 0)
        self.words = sorted(getattr(leaf, "vocabulary_", None) or {})
        texts = [v for v in [base, *given] if isinstance(v, str)]
        self.texts = list(dict.fromkeys([*texts, *(_TEXTS if self.words else ())]))
        numbers = [v for v in [base, *given] if isinstance(v, int | float) and v is not True]
        self.center, self.spread = _scale(leaf, position, numbers)

    def draw(self, rng: np.random.Generator) -> Any:
        if self.known:
            return self.known[rng.integers(len(self.known))]
        if self.dtype == "boolean":
            return bool(rng.integers(2))
        if self.dtype == "string":
            return self._text(rng)
        return float(self.center + self.spread * rng.standard_normal())

    def _text(self, rng: np.random.Generator) -> str:
        if self.words and rng.integers(4):  # mostly the vectorizer's own words, some in capitals
            picked = rng.choice(self.words, size=int(rng.integers(1, 6))).tolist()
            return " ".join(w.upper() if rng.integers(5) == 0 else w for w in picked)
        return self.texts[rng.integers(len(self.texts))]


def _scale(leaf: Any, position: int, numbers: list[float]) -> tuple[float, float]:
    """(center, spread) of a number column: a StandardScaler's mean and scale where one reads
    it, else the sample's values (the base row's at least)."""
    if isinstance(leaf, StandardScaler) and leaf.mean_ is not None and position < len(leaf.mean_):
        scale = 1.0 if leaf.scale_ is None else float(leaf.scale_[position])
        return float(leaf.mean_[position]), scale
    center = float(np.mean(numbers)) if numbers else 0.0
    spread = float(np.std(numbers)) if len(numbers) > 1 else 0.0
    return center, spread or max(1.0, abs(center))


def _input_scaler(estimator: Any, n_features: int) -> tuple[np.ndarray, np.ndarray] | None:
    # Only a first step sees the raw features; a later scaler lives in another space.
    first = estimator.steps[0][1] if isinstance(estimator, Pipeline) else None
    if not isinstance(first, StandardScaler):
        return None
    mean = first.mean_ if first.mean_ is not None else np.zeros(n_features)
    scale = first.scale_ if first.scale_ is not None else np.ones(n_features)
    if len(mean) != n_features or len(scale) != n_features:
        return None
    return np.asarray(mean, dtype=float), np.asarray(scale, dtype=float)


def compare(
    reference: ModelRuntime,
    candidate: ModelRuntime,
    rows: Rows,
    output_schema: dict[str, Any],
    proba_atol: float,
    regression_rtol: float,
) -> Verdict:
    """Classifiers: every label identical (same JSON, so types too) and probabilities within
    proba_atol. Regressors: max |difference| within regression_rtol x the largest |value| --
    relative to the outputs' scale, since float rounding errors scale with the magnitude of the
    sums that produced them, not with each value (a per-value rtol fails any output near 0)."""
    expected, got = reference.predict(rows), candidate.predict(rows)
    if output_schema["task"] == "regression":
        return _compare_values(expected, got, regression_rtol)
    n = len(rows)
    flips = sum(orjson.dumps(a) != orjson.dumps(b) for a, b in zip(expected, got, strict=True))
    if flips:
        return Verdict(False, f"ONNX Runtime changed {flips} of {n} probe labels", n)
    if not output_schema.get("has_proba"):
        return Verdict(True, f"labels identical on {n} probe rows", n, 0.0)
    return _compare_proba(reference, candidate, rows, proba_atol)


def _compare_proba(
    reference: ModelRuntime, candidate: ModelRuntime, rows: Rows, atol: float
) -> Verdict:
    expected, classes = reference.predict_proba(rows)
    got, got_classes = candidate.predict_proba(rows)
    n = len(rows)
    if orjson.dumps(classes) != orjson.dumps(got_classes):
        return Verdict(False, f"class order differs: {got_classes} vs {classes}", n)
    diff = _max_abs_diff(expected, got)
    if not diff <= atol:  # `not <=` so that NaN fails too
        return Verdict(
            False, f"probabilities differ by up to {diff:.1e} (ONNX_PROBA_ATOL {atol:g})", n, diff
        )
    return Verdict(
        True, f"labels identical on {n} probe rows, probabilities within {diff:.1e}", n, diff
    )


def _compare_values(expected: list[Any], got: list[Any], rtol: float) -> Verdict:
    """Each value within rtol of scikit-learn's own (a client compares values, not scales); a
    value that is zero to within 1e-12 of the outputs' scale is held to that instead, since no
    relative difference from 0 exists."""
    n = len(expected)
    a, b = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)
    if a.shape != b.shape:
        return Verdict(False, f"output shape {b.shape} differs from {a.shape}", n)
    scale = max(float(np.abs(a).max(initial=0.0)), np.finfo(np.float64).tiny)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-12 * scale), initial=0.0))
    if not rel <= rtol:  # `not <=` so that NaN fails too
        return Verdict(
            False,
            f"values differ by up to {rel:.1e} of themselves (ONNX_REGRESSION_RTOL {rtol:g})",
            n,
            rel,
        )
    return Verdict(True, f"values within {rel:.1e} of themselves on {n} probe rows", n, rel)


def _max_abs_diff(a: Any, b: Any) -> float:
    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return float(np.nan if np.isnan(diff).any() else diff.max(initial=0.0))
