"""Validate a `.onnx` upload: standard operators only, schema from the graph, smoke prediction."""

from __future__ import annotations

import platform
from typing import Any

import onnx
import onnxruntime as ort

from shared.onnx_graph import OnnxGraphError
from shared.safe_load import ModelLoadError
from workers.runtimes.onnx import OnnxRuntime
from workers.validation.equivalence import numeric_rows
from workers.validation.introspect import SmokePredictError


def inspect_onnx(data: bytes, sample: list[Any] | None) -> dict[str, Any]:
    """The same description validation records for scikit-learn models, read from the graph of
    the file's bytes; raises ModelLoadError (bad graph) or SmokePredictError (it cannot
    predict)."""
    try:
        runtime = OnnxRuntime.from_bytes(data)
    except OnnxGraphError as exc:
        raise ModelLoadError(str(exc)) from exc
    except Exception as exc:  # onnxruntime refuses what it cannot run (unknown op, bad types)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelLoadError(f"ONNX Runtime cannot load this model: {first[:300]}") from exc
    n_features = runtime.n_features
    _smoke(runtime, n_features, sample)
    return {
        "estimator": _producer(runtime),
        "steps": None,
        "framework": "onnx",
        "versions": {
            "onnxruntime": ort.__version__,
            "onnx": onnx.__version__,
            "python": platform.python_version(),
        },
        "input_schema": {"n_features": n_features, "feature_names": None},
        "output_schema": runtime.schema,
        "warnings": [],
    }


def _smoke(runtime: OnnxRuntime, n_features: int, sample: list[Any] | None) -> None:
    rows = numeric_rows(sample, None, n_features)
    if sample and len(rows) != len(sample):
        raise SmokePredictError(f"sample rows must be lists of {n_features} finite numbers")
    probe = [[0.0] * n_features, *rows]
    try:
        if len(runtime.predict(probe)) != len(probe):
            raise SmokePredictError("the model returned a different number of rows")
        if runtime.schema["has_proba"]:
            runtime.predict_proba(probe)
    except SmokePredictError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise SmokePredictError(f"model failed to predict: {type(exc).__name__}: {first}") from exc


def _producer(runtime: OnnxRuntime) -> str:
    meta = runtime.session.get_modelmeta()
    return f"onnx ({meta.producer_name or 'unknown producer'})"
