"""Validate a `.onnx` upload: standard operators only, schema from the graph, smoke prediction."""

from __future__ import annotations

import platform
from typing import Any

import onnx
import onnxruntime as ort

from shared.onnx_graph import OnnxGraphError
from shared.safe_load import ModelLoadError
from workers.runtimes.onnx import OnnxRuntime
from workers.validation.introspect import numeric_columns, smoke_runtime


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
    smoke_runtime(runtime, n_features, None, runtime.schema["has_proba"], sample)
    return {
        "estimator": _producer(runtime),
        "steps": None,
        "framework": "onnx",
        "versions": {
            "onnxruntime": ort.__version__,
            "onnx": onnx.__version__,
            "python": platform.python_version(),
        },
        "input_schema": {
            "n_features": n_features,
            "feature_names": None,
            "columns": numeric_columns(runtime, n_features, None, runtime.schema["has_proba"]),
        },
        "output_schema": runtime.schema,
        "warnings": [],
    }


def _producer(runtime: OnnxRuntime) -> str:
    meta = runtime.session.get_modelmeta()
    return f"onnx ({meta.producer_name or 'unknown producer'})"
