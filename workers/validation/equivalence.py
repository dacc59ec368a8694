"""Does an ONNX model give scikit-learn's answers? Probe rows, then a strict comparison.

Both sides are called through the serving runtimes themselves (SklearnRuntime, OnnxRuntime), so
what is compared is exactly what a job would return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from shared.features import in_feature_order
from workers.runtimes.base import ModelRuntime

NORMAL_ROWS = 256
SCALED_ROWS = 256
MISSING_ROWS = 64
_SEED = 20261126  # fixed: the same model always gets the same verdict


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
    rows: list[list[float]],
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
    reference: ModelRuntime, candidate: ModelRuntime, rows: list[list[float]], atol: float
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
    n = len(expected)
    a, b = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)
    if a.shape != b.shape:
        return Verdict(False, f"output shape {b.shape} differs from {a.shape}", n)
    scale = max(float(np.abs(a).max(initial=0.0)), np.finfo(np.float64).tiny)
    rel = _max_abs_diff(a, b) / scale
    if not rel <= rtol:
        return Verdict(
            False,
            f"values differ by up to {rel:.1e} of their scale (ONNX_REGRESSION_RTOL {rtol:g})",
            n,
            rel,
        )
    return Verdict(True, f"values within {rel:.1e} of their scale on {n} probe rows", n, rel)


def _max_abs_diff(a: Any, b: Any) -> float:
    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return float(np.nan if np.isnan(diff).any() else diff.max(initial=0.0))
