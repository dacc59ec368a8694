"""Describe a loaded model and check that it predicts: pure functions for model validation.

No Celery and no database here, so the validation task stays a thin wrapper around these.
"""

from __future__ import annotations

import math
import platform
from typing import Any

import numpy as np
import scipy
import sklearn
from celery.exceptions import SoftTimeLimitExceeded
from sklearn.base import (
    BaseEstimator,
    is_classifier,
    is_clusterer,
    is_outlier_detector,
    is_regressor,
)
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from shared.features import FeatureMismatch, in_feature_order
from workers.runtimes.base import ModelRuntime
from workers.validation import boosters, columns
from workers.validation.equivalence import numeric_rows


class NotAModelError(ValueError):
    """The object is not a fitted scikit-learn model with `predict` (a classifier, regressor,
    clusterer or outlier detector)."""


class SmokePredictError(ValueError):
    """The model could not predict one all-zeros row of its declared input schema."""


def describe(estimator: object) -> dict[str, Any]:
    """Return the JSON-safe description stored with a model version.

    Keys: estimator (qualified class name), steps (pipeline steps or None), framework, versions
    (of this runtime), input_schema (n_features, feature_names) and output_schema (task, classes,
    has_proba). Raises NotAModelError for anything that is not a fitted estimator with predict.
    """
    _require_fitted_model(estimator)
    classifier = is_classifier(estimator)
    feature_names = getattr(estimator, "feature_names_in_", None)
    classes = getattr(estimator, "classes_", None) if classifier else None
    return {
        "estimator": _qualified_name(estimator),
        "steps": _steps(estimator),
        "framework": boosters.framework(estimator),
        "versions": {
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "python": platform.python_version(),
        },
        "input_schema": {
            "n_features": int(estimator.n_features_in_),  # type: ignore[attr-defined]
            "feature_names": None if feature_names is None else [str(n) for n in feature_names],
        },
        "output_schema": {
            "task": task(estimator),
            "classes": None if classes is None else _json_safe(classes),
            # hasattr honours available_if: SVC(probability=False) has no predict_proba, nor
            # has LinearSVC: those answer labels and refuse return_probabilities.
            "has_proba": bool(classifier and hasattr(estimator, "predict_proba")),
            # An outlier detector's score_samples, returned when a request asks (return_scores).
            "has_scores": bool(
                task(estimator) == "outlier" and hasattr(estimator, "score_samples")
            ),
        },
    }


def smoke_predict(
    estimator: Any, input_schema: dict[str, Any], sample: list[Any] | None = None
) -> None:
    """Record what each input column takes on `input_schema["columns"]` (workers/validation/
    columns.py) and check that the model answers its probe rows: a plausible row, the same with
    every nullable column missing, another with other categories and numbers. Also calls
    predict_proba when the model has it, since inference will. Raises SmokePredictError with the
    model's error when it cannot answer them."""
    rows = _sample_rows(sample, input_schema.get("feature_names"))
    input_schema["columns"] = columns.declared_columns(estimator, input_schema, rows)
    probe = columns.Probe(estimator, input_schema, hasattr(estimator, "predict_proba"))
    base = columns.base_row(input_schema["columns"], rows)
    _answer(probe, [base], "a probe row")
    columns.probe_columns(probe, base, estimator)
    _answer(probe, columns.probe_rows(input_schema["columns"], base), "its probe rows")


def _answer(probe: columns.Probe, rows: list[list[Any]], what: str) -> None:
    try:
        probe.predict(rows)
    except (SoftTimeLimitExceeded, MemoryError):
        raise
    except Exception as exc:
        raise SmokePredictError(f"model failed to predict {what}: {_first_line(exc)}") from exc


def _sample_rows(sample: list[Any] | None, names: list[str] | None) -> list[list[Any]]:
    """The sample's rows in feature order, for reading column types (bad rows are the sample
    check's to report)."""
    rows = []
    for row in sample or []:
        try:
            ordered = in_feature_order(row, names)
        except FeatureMismatch:
            continue
        if isinstance(ordered, list):
            rows.append(ordered)
    return rows


# Just past float32's largest finite value (3.4028235e38).
_PAST_FLOAT32 = 3.5e38


def refuses_past_float32(estimator: Any, input_schema: dict[str, Any]) -> bool:
    """Whether the model refuses numbers beyond float32 at its input, as scikit-learn's trees
    do ("Input X contains infinity or a value too large for dtype('float32')"). Found by
    predicting a row of them, not guessed from the class: the web tier then refuses such numbers
    for this model, also when ONNX Runtime (which would answer them as infinity) serves it."""
    schema = input_schema
    if schema.get("columns") is None:
        schema = {**input_schema, "columns": columns.declared_columns(estimator, input_schema, [])}
    probe = columns.Probe(estimator, schema, has_proba=False)
    base = columns.base_row(schema["columns"], [])
    row = [
        _PAST_FLOAT32 if column["dtype"] == "number" else value
        for column, value in zip(schema["columns"], base, strict=True)
    ]
    try:
        probe.predict([row])
    except ValueError as exc:
        return "float32" in str(exc)
    except Exception:
        return False  # refused for another reason: not what this probe is about
    return False


def smoke_runtime(
    runtime: ModelRuntime,
    n_features: int,
    names: list[str] | None,
    has_proba: bool,
    sample: list[Any] | None,
) -> None:
    """Predict an all-zeros row and the attached sample through a runtime that takes rows of
    numbers (an ONNX graph, a booster's own file); SmokePredictError when it cannot."""
    rows = numeric_rows(sample, names, n_features)
    if sample and len(rows) != len(sample):
        raise SmokePredictError(f"sample rows must be lists of {n_features} finite numbers")
    probe = [[0.0] * n_features, *rows]
    try:
        if len(runtime.predict(probe)) != len(probe):
            raise SmokePredictError("the model returned a different number of rows")
        if has_proba:
            runtime.predict_proba(probe)
    except SmokePredictError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise SmokePredictError(f"model failed to predict: {type(exc).__name__}: {first}") from exc


def numeric_columns(
    runtime: ModelRuntime, n_features: int, names: list[str] | None, has_proba: bool
) -> list[dict[str, Any]]:
    """The columns of a model that takes numbers only (an ONNX graph, a booster's own file):
    nullable when it answers a row of missing values (NaN) with finite outputs, as boosters do
    (they route a missing value down each tree's default branch); a network answers NaN."""
    takes_missing = _finite_answer(runtime, [[math.nan] * n_features], has_proba)
    return [
        {"name": name, "dtype": "number", "nullable": takes_missing}
        for name in names or [f"x{i}" for i in range(n_features)]
    ]


def _finite_answer(runtime: ModelRuntime, rows: list[list[float]], has_proba: bool) -> bool:
    try:
        outputs = runtime.predict_proba(rows)[0] if has_proba else runtime.predict(rows)
        return bool(np.isfinite(np.asarray(outputs, dtype=np.float64)).all())
    except (SoftTimeLimitExceeded, MemoryError):
        raise
    except Exception:
        return False


def _require_fitted_model(estimator: object) -> None:
    if not isinstance(estimator, BaseEstimator):
        raise NotAModelError(f"not a scikit-learn estimator: {type(estimator).__name__}")
    name = type(estimator).__name__
    if not hasattr(estimator, "predict"):
        raise NotAModelError(f"{name} has no predict method")
    try:
        check_is_fitted(estimator)
    except NotFittedError as exc:
        raise NotAModelError(f"{name} is not fitted") from exc
    if not hasattr(estimator, "n_features_in_"):
        raise NotAModelError(f"{name} does not record its number of input features")
    if task(estimator) is None:
        raise NotAModelError(
            f"{name} is not a classifier, regressor, clusterer or outlier detector"
        )


def task(estimator: object) -> str | None:
    """What predict answers: "classification" (labels), "regression" (numbers), "clustering"
    (cluster labels, e.g. KMeans) or "outlier" (1 inlier, -1 outlier, e.g. IsolationForest);
    None for anything else. A pipeline answers what its last step does."""
    if is_classifier(estimator):
        return "classification"
    if is_regressor(estimator):
        return "regression"
    if is_clusterer(estimator):
        return "clustering"
    if is_outlier_detector(estimator):
        return "outlier"
    return None


def _qualified_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _steps(estimator: object) -> list[dict[str, str]] | None:
    if not isinstance(estimator, Pipeline):
        return None
    return [{"name": name, "class": _step_class(step)} for name, step in estimator.steps]


def _step_class(step: object) -> str:
    # A step may be skipped with None or "passthrough" instead of an estimator.
    return "passthrough" if step is None or isinstance(step, str) else _qualified_name(step)


def _json_safe(value: Any) -> Any:
    """numpy arrays and scalars (also inside object arrays) to plain Python values."""
    if isinstance(value, np.ndarray):
        return [_json_safe(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
