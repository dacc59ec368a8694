"""What the validation sandbox does with an upload: load it through the allow-list, audit it,
describe it, predict a probe row and the attached sample, and try compiling it to ONNX (a
booster's own file: load, check and describe it, workers/validation/booster_upload.py).

Runs only inside the sandbox's child (workers/validation/sandbox_child.py): it takes the file's
bytes and the few settings it needs in the request, and returns JSON-safe metadata plus the
compiled ONNX bytes; storing them is the worker's job.
"""

from __future__ import annotations

import contextlib
import functools
import signal
from collections.abc import Iterator
from typing import Any

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded

from shared.booster_files import NATIVE_FORMATS
from shared.config import Settings
from shared.errors import ValidationFailed
from shared.jobs import inputs
from shared.jobs.checks import normalise_rows
from shared.onnx_graph import OnnxGraphError
from shared.safe_load import ModelLoadError, load_model, load_with_warnings
from shared.schemas.models import MAX_SAMPLE_ROWS
from workers.runtimes.sklearn import SklearnRuntime
from workers.validation.audit import audit_model, check_classes
from workers.validation.booster_upload import inspect_native
from workers.validation.compile import compile_model
from workers.validation.introspect import (
    NotAModelError,
    SmokePredictError,
    describe,
    refuses_past_float32,
    smoke_predict,
)
from workers.validation.onnx_upload import inspect_onnx

EXPECTED = (ModelLoadError, NotAModelError, SmokePredictError, OnnxGraphError)
# Settings the compiler reads; the sandbox gets their values in the request, never the rest.
COMPILE_SETTINGS = ("onnx_enabled", "onnx_proba_atol", "onnx_regression_rtol", "onnx_max_model_mb")


def inspect_upload(request: dict[str, Any], artifact: bytes) -> tuple[dict[str, Any], bytes]:
    """(meta, compiled ONNX bytes or b"") for one upload; raises one of EXPECTED when refused."""
    fmt, sample = request["format"], request.get("sample")
    if fmt == "onnx":
        return inspect_onnx(artifact, sample), b""
    if fmt in NATIVE_FORMATS:
        return inspect_native(fmt, artifact, sample), b""
    estimator, warnings = load_with_warnings(functools.partial(load_model, fmt=fmt), artifact)
    audit_model(estimator)
    check_classes(getattr(estimator, "classes_", None))  # before describe() copies them
    meta = describe(estimator)
    smoke_predict(estimator, meta["input_schema"], sample)
    if refuses_past_float32(estimator, meta["input_schema"]):
        meta["input_schema"]["float32"] = True
    if sample:
        predict_sample(estimator, meta, sample)
    meta["warnings"] = warnings
    settings = Settings(**{name: request["compile"][name] for name in COMPILE_SETTINGS})
    with _time_budget(float(request["compile"]["budget_s"])):
        compiled = compile_model(estimator, meta, sample, settings, len(artifact))
    meta["onnx"] = compiled.info
    if compiled.info.get("refuses_missing"):  # the worker sends rows with gaps to scikit-learn
        meta["input_schema"]["onnx_differs_on_missing"] = True
    return meta, compiled.data or b""


def predict_sample(estimator: Any, meta: dict[str, Any], sample: list[Any]) -> None:
    """The sample, checked as the web tier checks a prediction's rows and predicted as a worker
    would: an upload whose own sample the service would refuse or fail is not `ready`."""
    schema = meta["input_schema"]
    try:
        rows = normalise_rows(sample, schema, MAX_SAMPLE_ROWS)
    except ValidationFailed as exc:
        where = ", ".join(f"{k} {v}" for k, v in (exc.details or {}).items())
        raise SmokePredictError(f"the attached sample is refused ({where}): {exc}") from exc
    runtime = SklearnRuntime(estimator, schema.get("feature_names"))
    model_input = rows if isinstance(rows, np.ndarray) else inputs.to_frame(rows)
    try:
        runtime.predict(model_input)
        if meta["output_schema"]["has_proba"]:
            runtime.predict_proba(model_input)
    except (SoftTimeLimitExceeded, MemoryError):
        raise
    except Exception as exc:
        raise SmokePredictError(f"model failed to predict the attached sample: {exc}") from exc


@contextlib.contextmanager
def _time_budget(seconds: float) -> Iterator[None]:
    """Raise SoftTimeLimitExceeded in the block after `seconds`: the compiler then keeps
    scikit-learn instead of the whole validation running out of time."""

    def expire(*_: object) -> None:
        raise SoftTimeLimitExceeded("ONNX compilation budget spent")

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
