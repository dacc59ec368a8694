"""Validate an uploaded model in a worker: load it safely, describe it, smoke-predict it.

The web tier never deserialises an upload; everything that touches the file's contents is here.
"""

from __future__ import annotations

import functools
import logging
import uuid
from typing import Any

from sqlalchemy import func, select, update

from shared.config import get_settings
from shared.db import session_scope
from shared.models import MLModel
from shared.runtime_choice import choose_runtime
from shared.safe_load import ModelLoadError, load_model, load_with_warnings
from shared.store import get_store
from workers.compile import compile_model
from workers.introspect import NotAModelError, SmokePredictError, describe, smoke_predict
from workers.onnx_upload import inspect_onnx
from workers.runtime import SklearnRuntime

log = logging.getLogger(__name__)

_EXPECTED = (ModelLoadError, NotAModelError, SmokePredictError)


def validate_model(model_id: str) -> str:
    """Validate one upload and record the outcome; returns the model's new status."""
    mid = uuid.UUID(model_id)
    with session_scope() as session:
        row = session.execute(
            select(MLModel.artifact_key, MLModel.format, MLModel.sample).where(
                MLModel.id == mid, MLModel.status == "validating"
            )
        ).first()
    if row is None:
        return "skipped"  # already validated (duplicate delivery) or deleted
    try:
        meta = inspect_artifact(row.artifact_key, row.format, row.sample, mid)
    except _EXPECTED as exc:
        return _record(mid, "failed", error=str(exc)[:1000])
    except Exception as exc:  # a broken file can raise anything while it is being read
        log.warning("validation of %s crashed", model_id, exc_info=True)
        return _record(mid, "failed", error=f"{type(exc).__name__}: {str(exc)[:500]}")
    return _record(mid, "ready", meta=meta)


def inspect_artifact(
    key: str, fmt: str, sample: list[Any] | None, model_id: uuid.UUID | None = None
) -> dict[str, Any]:
    """Load through the allow-list, describe, and predict a zero row (and the sample, if any);
    with a model id, also try compiling it to an equivalent ONNX model (meta["compiled"])."""
    path = get_store().local_path(key)
    if fmt == "onnx":
        return inspect_onnx(path, sample)
    estimator, warnings = load_with_warnings(functools.partial(load_model, fmt=fmt), path)
    meta = describe(estimator)
    smoke_predict(estimator, meta["input_schema"])
    if sample:
        _predict_sample(estimator, meta["input_schema"], sample)
    meta["warnings"] = warnings
    if model_id is not None:
        size = path.stat().st_size
        meta["compiled"] = compile_model(model_id, estimator, meta, sample, get_settings(), size)
    return meta


def _predict_sample(estimator: Any, input_schema: dict[str, Any], sample: list[Any]) -> None:
    names = input_schema.get("feature_names")
    rows = [[r[n] for n in names] if isinstance(r, dict) and names else r for r in sample]
    try:
        SklearnRuntime(estimator, names).predict(rows)
    except Exception as exc:
        raise SmokePredictError(f"model failed to predict the attached sample: {exc}") from exc


def _record(
    model_id: uuid.UUID, status: str, meta: dict | None = None, error: str | None = None
) -> str:
    values: dict[str, Any] = {"status": status, "error": error}
    if meta:
        values |= {
            "framework": meta["framework"],
            "input_schema": meta["input_schema"],
            "output_schema": meta["output_schema"],
            "info": {k: meta.get(k) for k in ("estimator", "steps", "versions", "warnings")},
        }
        if meta.get("compiled") is not None:
            values["info"]["onnx"] = meta["compiled"].info
    with session_scope() as session:
        if meta:
            values |= _runtime_values(session, model_id, meta)
        session.execute(
            update(MLModel)
            .where(MLModel.id == model_id, MLModel.status == "validating")
            .values(**values, updated_at=func.now())
        )
    return status


def _runtime_values(session: Any, model_id: uuid.UUID, meta: dict[str, Any]) -> dict[str, Any]:
    """Runtime columns from the compilation outcome and the owner's preference, read under a
    row lock so that a concurrent PATCH of the preference is never lost."""
    row = session.execute(
        select(MLModel.format, MLModel.runtime_preference)
        .where(MLModel.id == model_id)
        .with_for_update()
    ).first()
    if row is None:
        return {}
    fmt, preference = row
    compiled = meta.get("compiled")
    stored = compiled.stored if compiled else None
    onnx_info = compiled.info if compiled else None
    runtime, reason = choose_runtime(fmt, preference, stored and stored.key, onnx_info)
    values = {"runtime": runtime, "runtime_reason": reason}
    if stored is not None:
        values |= {
            "onnx_key": stored.key,
            "onnx_sha256": stored.sha256,
            "onnx_size_bytes": stored.size_bytes,
        }
    return values


def record_crash(model_id: str, crashes: int) -> str:
    """The file killed the worker process each time it was loaded: fail it for good."""
    message = f"the worker process died {crashes} times loading this file"
    return _record(uuid.UUID(model_id), "failed", error=message)
