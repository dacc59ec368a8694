"""Upload handling: format sniffing, version allocation, streaming into the artifact store."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

import orjson
from flask import request
from sqlalchemy import func, select, text
from werkzeug.datastructures import FileStorage

from shared.booster_files import NATIVE_FORMATS, REFUSED_FORMATS
from shared.errors import BadRequest, PayloadTooLarge, UnsupportedFormat, ValidationFailed
from shared.models import MLModel
from shared.safe_load import detect_format
from shared.schemas.models import MAX_SAMPLE_ROWS
from shared.store import TooLarge
from web import extensions
from web.extensions import db

# Room for the multipart envelope and the small text fields around the file.
FORM_OVERHEAD = 1 << 20
EXTENSIONS = {"joblib": "joblib", "skops": "skops", "onnx": "onnx"} | {
    fmt: extension for fmt, (_, extension) in NATIVE_FORMATS.items()
}


def upload_guard(view: Callable[..., Any]) -> Callable[..., Any]:
    """Before the form is parsed: require multipart and narrow the body limit to MAX_UPLOAD_MB,
    so werkzeug answers 413 as soon as the stream passes it."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if request.mimetype != "multipart/form-data":
            raise BadRequest(
                "Model upload must be multipart/form-data", code="unsupported_content_type"
            )
        request.max_content_length = extensions.settings().max_upload_bytes + FORM_OVERHEAD
        return view(*args, **kwargs)

    return wrapper


def sniff_format(upload: FileStorage) -> str:
    """The artifact's format from its first bytes (and name, for ONNX and XGBoost's files);
    415 when unknown, or known and not served (CatBoost), with what to do instead."""
    head = upload.stream.read(16)
    upload.stream.seek(0)
    fmt = detect_format(head, upload.filename)
    if fmt in REFUSED_FORMATS:
        raise UnsupportedFormat(REFUSED_FORMATS[fmt], details={"filename_ignored": True})
    if fmt not in EXTENSIONS:
        raise UnsupportedFormat(
            "Unsupported model file: expected a joblib/pickle (protocol 3+), skops or .onnx file, "
            "or XGBoost's .json/.ubj or LightGBM's text model file; other libraries: export the "
            "model to ONNX",
            details={"filename_ignored": True},
        )
    return fmt


def parse_sample(raw: str | None) -> list[Any] | None:
    """Optional JSON rows attached to an upload: validated for shape, not yet against the model."""
    if raw is None or not raw.strip():
        return None
    if "\\u0000" in raw or "\x00" in raw:  # JSONB cannot store U+0000
        raise ValidationFailed(
            "sample must not contain NUL characters", details={"field": "sample"}
        )
    try:
        # orjson, not json: it stops at 1,024 levels with an error where json recursed into a
        # RecursionError (a 2,000-deep sample was a 500), and it refuses NaN, which JSONB does.
        rows = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationFailed("sample must be JSON", details={"field": "sample"}) from None
    if not isinstance(rows, list) or not 1 <= len(rows) <= MAX_SAMPLE_ROWS:
        raise ValidationFailed(
            f"sample must be a JSON list of 1..{MAX_SAMPLE_ROWS} rows", details={"field": "sample"}
        )
    if not all(isinstance(r, list | dict) and _flat(r) for r in rows):
        raise ValidationFailed(
            "each sample row must be a list or an object of plain values (no nesting)",
            details={"field": "sample"},
        )
    return rows


def _flat(row: list | dict) -> bool:
    """A row holds numbers, strings, booleans or nulls: as an input row would."""
    values = row.values() if isinstance(row, dict) else row
    return not any(isinstance(v, list | dict) for v in values)


def next_version(owner_id: uuid.UUID, name: str) -> int:
    """max + 1 under a transaction-scoped advisory lock on (owner, name): concurrent uploads of one
    name queue here for a moment instead of racing to the unique constraint."""
    db.session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"{owner_id}/{name}"}
    )
    current = db.session.scalar(
        select(func.max(MLModel.version)).where(MLModel.owner_id == owner_id, MLModel.name == name)
    )
    return (current or 0) + 1


def store_artifact(model_id: uuid.UUID, fmt: str, upload: FileStorage):
    """Stream the file into the store under a generated key; the client's filename is ignored."""
    settings = extensions.settings()
    key = f"{model_id}.{EXTENSIONS[fmt]}"
    try:
        return extensions.store().save(key, upload.stream, max_bytes=settings.max_upload_bytes)
    except TooLarge:
        raise PayloadTooLarge(
            f"Model file exceeds MAX_UPLOAD_MB ({settings.max_upload_mb:g} MB)"
        ) from None
