"""Describe a loaded model and check that it predicts: pure functions for model validation.

No Celery and no database here, so the validation task stays a thin wrapper around these.
"""

from __future__ import annotations

import platform
from typing import Any

import numpy as np
import scipy
import sklearn
from sklearn.base import (
    BaseEstimator,
    is_classifier,
    is_clusterer,
    is_outlier_detector,
    is_regressor,
)
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from workers.runtimes.base import ModelRuntime
from workers.validation import boosters
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
        },
    }


def smoke_predict(estimator: Any, input_schema: dict[str, Any]) -> None:
    """Predict one all-zeros row (a DataFrame when the model knows its feature names).

    Columns that a fitted categorical encoder reads get the encoder's first category instead of 0:
    an encoder fitted on strings fails on 0.0 even with handle_unknown="ignore". Also calls
    predict_proba when the model has it, since inference will. Raises SmokePredictError
    with the underlying error when either call fails or returns the wrong number of rows.
    """
    try:
        row = _zeros_row(estimator, input_schema)
        _check_one_row("predict", estimator.predict(row))
        if hasattr(estimator, "predict_proba"):
            _check_one_row("predict_proba", estimator.predict_proba(row))
    except SmokePredictError:
        raise
    except Exception as exc:
        message = str(exc).strip().split("\n", 1)[0]
        raise SmokePredictError(
            f"model failed to predict one all-zeros row: {type(exc).__name__}: {message}"
        ) from exc


# Just past float32's largest finite value (3.4028235e38).
_PAST_FLOAT32 = 3.5e38


def refuses_past_float32(estimator: Any, input_schema: dict[str, Any]) -> bool:
    """Whether the model refuses numbers beyond float32 at its input, as scikit-learn's trees
    do ("Input X contains infinity or a value too large for dtype('float32')"). Found by
    predicting a row of them, not guessed from the class: the web tier then refuses such numbers
    for this model, also when ONNX Runtime (which would answer them as infinity) serves it."""
    row = _zeros_row(estimator, input_schema)
    if isinstance(row, np.ndarray):
        row = np.full_like(row, _PAST_FLOAT32)
    else:  # a DataFrame: numeric columns only (an encoder's column keeps its category)
        for name in row.columns:
            if isinstance(row.at[0, name], float):
                row[name] = _PAST_FLOAT32
    try:
        estimator.predict(row)
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


def _zeros_row(estimator: object, input_schema: dict[str, Any]) -> Any:
    n_features = int(input_schema["n_features"])
    names = input_schema.get("feature_names")
    if not names:
        return np.zeros((1, n_features))
    import pandas as pd

    values: dict[str, Any] = dict.fromkeys(names, 0.0)
    values.update(_first_categories(estimator, list(names)))
    return pd.DataFrame({name: [value] for name, value in values.items()}, columns=list(names))


def _first_categories(estimator: object, names: list[str]) -> dict[str, Any]:
    """Map input columns read by a fitted encoder (OneHotEncoder, OrdinalEncoder, ...) to a
    category it knows. Covers ColumnTransformers at the top or as pipeline steps."""
    found: dict[str, Any] = {}
    for transformer in _column_transformers(estimator):
        # Resolved input indices per transformer, whatever the column spec (names, selector).
        indices = getattr(transformer, "_transformer_to_input_indices", {})
        for name, part, _ in getattr(transformer, "transformers_", []):
            categories = getattr(_encoder(part), "categories_", None)
            if categories is None:
                continue
            for column, known in zip(indices.get(name, []), categories, strict=False):
                if len(known) and 0 <= column < len(names):
                    found[names[column]] = _json_safe(known[0])
    return found


def _column_transformers(estimator: object) -> list[ColumnTransformer]:
    if isinstance(estimator, ColumnTransformer):
        return [estimator]
    if isinstance(estimator, Pipeline):
        return [t for _, step in estimator.steps for t in _column_transformers(step)]
    return []


def _encoder(part: object) -> object | None:
    if isinstance(part, Pipeline):  # e.g. SimpleImputer then OneHotEncoder
        return next((s for _, s in part.steps if hasattr(s, "categories_")), None)
    return part if hasattr(part, "categories_") else None


def _check_one_row(method: str, output: Any) -> None:
    if len(output) != 1:
        raise SmokePredictError(f"{method} returned {len(output)} rows for 1 input row")
