"""Validate a booster's own model file (XGBoost .json/.ubj, LightGBM text): load it with no
pickle, check its trees, describe it from the booster, and predict a probe row and the sample.
"""

from __future__ import annotations

import platform
from typing import Any

import lightgbm
import numpy as np
import xgboost

from shared.booster_files import library
from workers.runtimes.lightgbm import LightGBMRuntime
from workers.runtimes.xgboost import XGBoostRuntime
from workers.validation.introspect import numeric_columns, smoke_runtime


def inspect_native(fmt: str, data: bytes, sample: list[Any] | None) -> dict[str, Any]:
    """The description validation records for a booster's own file; raises ModelLoadError or
    SmokePredictError like the scikit-learn path."""
    runtime = load_native(fmt, data)
    smoke_runtime(runtime, runtime.n_features, runtime.feature_names, runtime.has_proba, sample)
    lib = library(fmt) or fmt
    return {
        "estimator": f"{lib}.Booster ({runtime.objective})",
        "steps": None,
        "framework": lib,
        "versions": {
            lib: (xgboost if lib == "xgboost" else lightgbm).__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "input_schema": {
            "n_features": runtime.n_features,
            "feature_names": runtime.feature_names,
            "columns": numeric_columns(
                runtime, runtime.n_features, runtime.feature_names, runtime.has_proba
            ),
        },
        "output_schema": {
            "task": "classification" if runtime.classifier else "regression",
            "classes": runtime.classes,
            "has_proba": runtime.has_proba,
        },
        "warnings": [],
    }


def load_native(fmt: str, data: bytes) -> XGBoostRuntime | LightGBMRuntime:
    """The library's runtime over the file (its trees are checked on the way in)."""
    if library(fmt) == "xgboost":
        return XGBoostRuntime.from_bytes(data, fmt)
    return LightGBMRuntime.from_bytes(data)
