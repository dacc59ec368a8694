"""Validate an uploaded model in a worker: the file is read only inside the validation sandbox
(workers/validation/sandbox.py); this side sends it there, stores the compiled ONNX model it
answers with, and records the outcome.

The web tier never deserialises an upload; everything that touches the file's contents is there.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from sqlalchemy import func, select, update

from shared.config import Settings, get_settings
from shared.db import session_scope
from shared.models import MLModel
from shared.runtime_choice import choose_runtime
from shared.store import get_store
from workers.validation.compile import Compiled
from workers.validation.inspection import COMPILE_SETTINGS
from workers.validation.sandbox import Limits, SandboxError, get_sandbox

log = logging.getLogger(__name__)

MAX_ERROR = 300
MAX_META_BYTES = 1 << 20
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


class ValidationRefused(Exception):
    """The sandbox refused the file, or could not finish reading it."""


def validate_model(model_id: str) -> str:
    """Validate one upload and record the outcome; returns the model's new status."""
    mid = uuid.UUID(model_id)
    with session_scope() as session:
        row = session.execute(
            select(MLModel.artifact_key, MLModel.format, MLModel.sample, MLModel.sha256).where(
                MLModel.id == mid, MLModel.status == "validating"
            )
        ).first()
    if row is None:
        return "skipped"  # already validated (duplicate delivery) or deleted
    try:
        meta = inspect_artifact(row.artifact_key, row.format, row.sample, mid, row.sha256)
    except ValidationRefused as exc:
        return _record(mid, "failed", error=str(exc))
    except SandboxError as exc:
        log.warning("validation of %s: %s", model_id, exc)
        return _record(mid, "failed", error="validation could not finish: try the upload again")
    return _record(mid, "ready", meta=meta)


def inspect_artifact(
    key: str,
    fmt: str,
    sample: list[Any] | None,
    model_id: uuid.UUID | None = None,
    sha256: str | None = None,
) -> dict[str, Any]:
    """The sandbox's description of the artifact (meta["compiled"]: the ONNX model it compiled,
    stored as `<model id>.onnx` when a model id is given). Raises ValidationRefused.

    This process reads the file (from a remote store through the host's cache, under the
    recorded sha256, so serving finds it there) and hands the sandbox its bytes: the sandbox
    holds no store credentials and opens no file or connection."""
    settings = get_settings()
    artifact = get_store().local_path(key, sha256).read_bytes()
    request = {"format": fmt, "sample": sample, "compile": compile_request(settings)}
    limits = Limits(
        settings.validation_memory_mb, settings.validation_cpu_s, settings.validation_wall_s
    )
    answer, onnx = get_sandbox().run(request, artifact, limits, settings.max_upload_bytes)
    if not answer.get("ok"):
        raise ValidationRefused(clean_text(answer.get("error")))
    meta = _checked_meta(answer.get("meta"))
    info = meta.pop("onnx", None)
    if isinstance(info, dict):  # scikit-learn models: the compiler's outcome
        compiled = Compiled(onnx or None, info)
        meta["compiled"] = compiled.save(model_id) if model_id is not None else compiled
    return meta


def compile_request(settings: Settings) -> dict[str, Any]:
    """The settings the sandbox's compiler needs, and its share of the wall clock."""
    values = {name: getattr(settings, name) for name in COMPILE_SETTINGS}
    return values | {"budget_s": settings.validation_wall_s * 0.6}


def clean_text(text: Any, limit: int = MAX_ERROR) -> str:
    """A message derived from a file, fit to store and show: printable, one line, capped (the
    database refuses NUL, and a file must not fill its owner's screen)."""
    line = _UNPRINTABLE.sub(" ", str(text or "validation failed")).strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _checked_meta(meta: Any) -> dict[str, Any]:
    """The sandbox's answer is the file's word: the keys recorded must be there, of their
    types, and every string in it storable."""
    if not isinstance(meta, dict) or len(repr(meta)) > MAX_META_BYTES:
        raise ValidationRefused("validation answered an unusable description")
    for key, kind in (("input_schema", dict), ("output_schema", dict), ("framework", str)):
        if not isinstance(meta.get(key), kind):
            raise ValidationRefused("validation answered an unusable description")
    return _storable(meta)


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


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
    """Validation never finished in JOB_MAX_ATTEMPTS deliveries (its worker was killed or lost
    the task each time): fail it for good."""
    message = f"validation did not finish in {crashes} attempts"
    return _record(uuid.UUID(model_id), "failed", error=message)
