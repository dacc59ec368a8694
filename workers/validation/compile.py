"""Compile a validated scikit-learn model to ONNX, and keep the result only if it is equivalent.

Runs inside model validation (in its sandbox). XGBoost's and LightGBM's scikit-learn wrappers,
alone or in a pipeline, convert through onnxmltools' converters, registered with skl2onnx here.
Each candidate conversion (input dtype) is tried in turn; the first one whose answers match
scikit-learn's on the probe rows is returned, and the worker stores it beside the original as
`<model id>.onnx`. Anything else -- no converter, a runtime that rejects the graph, one differing
label -- keeps scikit-learn, with the reason recorded for the model's owner.

A model of typed columns (strings, integers, booleans) converts with one [batch, 1] input per
column, typed as the column is, and is compared on rows of every kind a job may send: known and
unseen categories, texts, missing values. A model of named number columns tries the one-matrix
graph first, then one input per column (a ColumnTransformer that selects columns by name needs
them named).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any

import lightgbm
import numpy as np
import onnx
import xgboost
from celery.exceptions import SoftTimeLimitExceeded
from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
from skl2onnx import to_onnx, update_registered_converter  # 1.6 s to import: here, once
from skl2onnx.common.data_types import (
    DoubleTensorType,
    FloatTensorType,
    Int64TensorType,
    StringTensorType,
)
from skl2onnx.common.shape_calculator import (
    calculate_linear_classifier_output_shapes,
    calculate_linear_regressor_output_shapes,
)
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

from shared.config import Settings
from shared.jobs import inputs
from shared.onnx_graph import CLASSES_PROP
from shared.store import Stored, get_store
from workers.runtimes.onnx import ROUNDING_PROP, OnnxRuntime
from workers.runtimes.sklearn import SklearnRuntime
from workers.validation.equivalence import (
    Verdict,
    compare,
    frame,
    missing_rows,
    numeric_rows,
    probe_rows,
    typed_probes,
)

log = logging.getLogger(__name__)
# Opsets every converter used here is tested with in skl2onnx 1.20 and onnxruntime 1.32.
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
# The input tensor of each typed column (number columns: the candidate's dtype). skl2onnx's
# encoders take no boolean tensor; booleans are the integers 0 and 1, as their categories
# False and True compare (the runtime feeds them so, workers/runtimes/onnx.py).
_COLUMN_TENSORS = {
    "integer": Int64TensorType,
    "boolean": Int64TensorType,
    "string": StringTensorType,
}


def _register_booster_converters() -> None:
    """onnxmltools' XGBoost and LightGBM converters for skl2onnx, so that a pipeline ending in
    one of their wrappers converts as a whole (the names are onnxmltools' own aliases)."""
    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    for model, alias, converter in (
        (xgboost.XGBClassifier, "XGBoostXGBClassifier", convert_xgboost),
        (lightgbm.LGBMClassifier, "LightGbmLGBMClassifier", convert_lightgbm),
    ):
        update_registered_converter(
            model,
            alias,
            calculate_linear_classifier_output_shapes,
            converter,
            options=classifier_options,
        )
    for model, alias, converter in (
        (xgboost.XGBRegressor, "XGBoostXGBRegressor", convert_xgboost),
        (lightgbm.LGBMRegressor, "LightGbmLGBMRegressor", convert_lightgbm),
    ):
        update_registered_converter(
            model,
            alias,
            calculate_linear_regressor_output_shapes,
            converter,
            options={"split": None},
        )


_register_booster_converters()


@dataclass(frozen=True)
class Candidate:
    dtype: str  # "double" or "float": the tensor type of number columns
    round_float32: bool = False
    per_column: bool = False  # one [batch, 1] input per column, else one [batch, n] matrix

    @property
    def label(self) -> str:
        rounded = ", rows rounded to float32" if self.round_float32 else ""
        return f"{self.dtype} input{', one per column' if self.per_column else ''}{rounded}"


@dataclass
class Probes:
    """The rows both runtimes answer, as a job brings them (a float64 matrix or a typed frame):
    `rows` without missing values, `missing` with some (None when no column takes one)."""

    rows: Any
    missing: Any
    count: int
    typed: bool


@dataclass
class Compiled:
    """The ONNX model to serve (None: scikit-learn stays) and what was found, for
    models.info["onnx"]; `stored` once the worker has saved it."""

    data: bytes | None
    info: dict[str, Any] = field(default_factory=dict)
    stored: Stored | None = None

    def save(self, model_id: uuid.UUID | str) -> Compiled:
        """Store the model as `<model id>.onnx` (when there is one) and record where."""
        if self.data is not None:
            self.stored = get_store().save(f"{model_id}.onnx", io.BytesIO(self.data))
            self.info |= {"sha256": self.stored.sha256, "size_bytes": self.stored.size_bytes}
        return self

    @property
    def reason(self) -> str:
        return str(self.info.get("reason", ""))


def compile_model(
    estimator: Any,
    meta: dict[str, Any],
    sample: list[Any] | None,
    settings: Settings,
    size_bytes: int = 0,
) -> Compiled:
    """Convert, probe, compare; the ONNX model's bytes when equivalent. Never raises."""
    if not settings.onnx_enabled:
        return Compiled(None, {"status": "disabled", "reason": "ONNX compilation is off"})
    limit_mb = settings.onnx_max_model_mb
    if size_bytes > limit_mb * 1024 * 1024:
        reason = f"not compiled: model file over ONNX_MAX_MODEL_MB ({limit_mb:g} MB)"
        return Compiled(None, {"status": "skipped", "reason": reason})
    started = time.perf_counter()
    try:
        compiled = _try_candidates(estimator, meta, sample, settings)
    except SoftTimeLimitExceeded:
        reason = "kept scikit-learn: ONNX conversion ran out of the validation time limit"
        compiled = Compiled(None, {"status": "fallback", "reason": reason})
    except Exception as exc:  # a bug here must not fail a model scikit-learn can serve
        log.warning("ONNX compilation of %s crashed", meta.get("estimator"), exc_info=True)
        reason = f"kept scikit-learn: ONNX compilation failed ({_short(exc)})"
        compiled = Compiled(None, {"status": "fallback", "reason": reason})
    compiled.info["seconds"] = round(time.perf_counter() - started, 3)
    return compiled


def _try_candidates(
    estimator: Any, meta: dict[str, Any], sample: Any, settings: Settings
) -> Compiled:
    schema = meta["input_schema"]
    reference = SklearnRuntime(estimator, schema.get("feature_names"))
    probes = _probes(estimator, schema, sample)
    tolerances = settings.onnx_proba_atol, settings.onnx_regression_rtol
    failures = []
    for candidate in candidates(estimator, schema):
        on_missing = None
        try:  # no converter, a graph onnxruntime refuses, a failing predict: next candidate
            data = convert(
                estimator,
                schema["n_features"],
                candidate,
                meta["output_schema"].get("classes"),
                schema.get("columns"),
            )
            runtime = OnnxRuntime.from_bytes(data)
            verdict = compare(reference, runtime, probes.rows, meta["output_schema"], *tolerances)
            if verdict.equivalent and probes.missing is not None:
                on_missing = _compare_missing(
                    reference, runtime, probes, meta["output_schema"], tolerances
                )
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:
            failures.append(f"{candidate.label}: {_short(exc)}")
            continue
        if verdict.equivalent and probes.typed and on_missing and not on_missing.equivalent:
            # A typed model's nulls are most often a missing category or text: a graph that
            # answers them otherwise does not serve it (a numeric one serves rows without them).
            failures.append(f"{candidate.label}: on rows with missing values, {on_missing.reason}")
        elif verdict.equivalent:
            return _found(data, candidate, verdict, on_missing)
        else:
            failures.append(f"{candidate.label}: {verdict.reason}")
    reason = "kept scikit-learn, no equivalent ONNX model (" + "; ".join(failures) + ")"
    return Compiled(None, {"status": "fallback", "reason": reason, "probe_rows": probes.count})


def _probes(estimator: Any, schema: dict[str, Any], sample: Any) -> Probes:
    """Probe rows for the model's columns: typed rows as a frame, numbers as a matrix."""
    columns = schema.get("columns") or []
    if inputs.is_typed(columns):
        typed = typed_probes(estimator, schema, sample)
        missing = frame(typed.missing, columns) if typed.missing else None
        count = len(typed.rows) + len(typed.missing)
        return Probes(frame(typed.rows, columns), missing, count, typed=True)
    n, names = schema["n_features"], schema.get("feature_names")
    rows = probe_rows(estimator, n, numeric_rows(sample, names, n))
    missing = missing_rows(rows, [bool(c["nullable"]) for c in columns])
    return Probes(rows, missing or None, len(rows) + len(missing), typed=False)


def _compare_missing(
    reference: SklearnRuntime,
    runtime: OnnxRuntime,
    probes: Probes,
    output_schema: dict[str, Any],
    tolerances: tuple[float, float],
) -> Verdict:
    """The verdict on the rows with missing values; a graph that cannot take them at all (an
    int64 input has no missing value) differs on them."""
    try:
        return compare(reference, runtime, probes.missing, output_schema, *tolerances)
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:
        return Verdict(False, f"predicting them failed ({_short(exc)})", len(probes.missing))


def _found(
    data: bytes, candidate: Candidate, verdict: Verdict, on_missing: Verdict | None
) -> Compiled:
    """The compiled model; when it answers missing values otherwise than scikit-learn, it still
    serves rows without them, and the worker predicts rows with them through scikit-learn."""
    reason = f"ONNX Runtime ({candidate.label}) matches scikit-learn: {verdict.reason}"
    info = {
        "status": "compiled",
        "reason": reason,
        "tensor_type": candidate.dtype,
        "probe_rows": verdict.rows,
        "max_diff": verdict.max_diff,
    }
    if on_missing is not None and on_missing.equivalent:
        info["reason"] += f"; also on {on_missing.rows} rows with missing values (null)"
    if on_missing is not None and not on_missing.equivalent:
        info["refuses_missing"] = True
        info["reason"] += (
            f"; rows with missing values (null) are predicted by scikit-learn: on them,"
            f" {on_missing.reason}"
        )
    return Compiled(data, info)


def candidates(estimator: Any, input_schema: dict[str, Any] | None = None) -> list[Candidate]:
    """Input layouts and dtypes to try, best first (docs/measurements.md, "Input dtypes for ONNX
    conversion").

    scikit-learn's own trees read float32 and sum in double: a double graph fed float32-rounded
    rows reproduces both; where onnxruntime refuses double trees (gradient boosting), float.
    Other models compute in double, so double comes first. A model of typed columns takes one
    input per column; one of named numbers tries the matrix first (one input, no Concat), then
    one input per column.
    """
    if _float32_trees(estimator):
        dtypes = [Candidate("double", round_float32=True), Candidate("float")]
    elif _final_step(estimator) is not estimator and _is_tree_model(_final_step(estimator)):
        # Trees behind a transformer see float32 of values scikit-learn transformed in double: a
        # float graph transforms in float32 and moves values across split thresholds (a bagged
        # regressor's answer 4 % off on ordinary rows, unseen by random probes), so only the
        # double graph, whose split tests differ only within float32 rounding of a threshold.
        dtypes = [Candidate("double")]
    else:
        dtypes = [Candidate("double"), Candidate("float")]
    schema = input_schema or {}
    per_column = [dataclasses.replace(c, per_column=True) for c in dtypes]
    if inputs.is_typed(schema.get("columns")):
        return per_column
    return dtypes + (per_column if schema.get("feature_names") else [])


def convert(
    estimator: Any,
    n_features: int,
    candidate: Candidate,
    classes: Any,
    columns: list[dict[str, Any]] | None = None,
) -> bytes:
    """skl2onnx conversion with one [batch, n_features] input, or one [batch, 1] input per
    column (named as the columns, typed as they are); classifiers without ZipMap. Writes the
    classes and the rounding rule into the model's metadata (the graph's inputs say the rest)."""
    _check_thresholds(estimator)
    number = DoubleTensorType if candidate.dtype == "double" else FloatTensorType
    if candidate.per_column:
        if not columns or len(columns) != n_features:
            raise ValueError("one input per column needs the model's recorded columns")
        initial_types = [
            (c["name"], _COLUMN_TENSORS.get(c["dtype"], number)([None, 1])) for c in columns
        ]
    else:
        initial_types = [("input", number([None, n_features]))]
    options = {id(estimator): {"zipmap": False}} if is_classifier(estimator) else None
    with warnings.catch_warnings():
        # skl2onnx passes bools where protobuf wants ints (the reason protobuf 7 breaks it).
        warnings.simplefilter("ignore", DeprecationWarning)
        model = to_onnx(
            estimator,
            initial_types=initial_types,
            options=options,
            target_opset=TARGET_OPSET,
        )
    props = {CLASSES_PROP: json.dumps(classes)} if classes is not None else {}
    if candidate.round_float32:
        props[ROUNDING_PROP] = "float32"
    onnx.helper.set_model_props(model, props)
    return model.SerializeToString()


def _check_thresholds(estimator: Any) -> None:
    """Refuse trees that split missing values from the rest (threshold +inf, as scikit-learn's
    trees learn from NaN in training): skl2onnx 1.20's float32 threshold search never returns
    on infinity, and would spend the whole compilation budget."""
    final = _final_step(estimator)
    members = [final, *np.ravel(np.asarray(getattr(final, "estimators_", []), dtype=object))]
    for member in members:
        tree = getattr(member, "tree_", None)
        if tree is not None and np.isinf(tree.threshold).any():
            raise ValueError("a tree splits on missing values (threshold inf): skl2onnx cannot")


def _final_step(estimator: Any) -> Any:
    return estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator


def _float32_trees(estimator: Any) -> bool:
    """A bare DecisionTree / forest / GradientBoosting model (their Tree casts X to float32)."""
    return not isinstance(estimator, Pipeline) and _is_tree_model(estimator)


def _is_tree_model(estimator: Any) -> bool:
    if hasattr(estimator, "tree_"):
        return True
    members = np.ravel(np.asarray(getattr(estimator, "estimators_", []), dtype=object))
    return members.size > 0 and hasattr(members[0], "tree_")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}".rstrip(": ")
