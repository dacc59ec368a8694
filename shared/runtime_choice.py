"""Which runtime serves a model: the one rule used by validation and by PATCH /models/{id}.

`models.runtime` always says what the next job will use, and workers simply honour it; so the
owner's preference ("auto" | "sklearn") is folded in whenever either side changes.
"""

from __future__ import annotations

from typing import Any

from shared.booster_files import library
from shared.errors import Conflict
from shared.models import MLModel

FORCED = "scikit-learn forced by the owner (runtime: sklearn)"


def choose_runtime(
    fmt: str, preference: str, onnx_key: str | None, onnx_info: dict[str, Any] | None
) -> tuple[str, str]:
    """(runtime, runtime_reason) for a model's format, preference and compilation outcome."""
    if fmt == "onnx":
        return "onnx", "ONNX upload: served by ONNX Runtime"
    native = library(fmt)
    if native is not None:
        return native, f"{native} model file: served by {native}"
    verdict = (onnx_info or {}).get("reason") or "not compiled to ONNX"
    if onnx_key is None:
        return "sklearn", verdict
    if preference == "sklearn":
        return "sklearn", f"{FORCED}; ONNX available: {verdict}"
    return "onnx", verdict


def apply_preference(model: MLModel, preference: str) -> None:
    """Record the owner's runtime choice and what it means for the next job; an ONNX upload
    has no scikit-learn model to fall back to (409)."""
    if model.format == "onnx" and preference == "sklearn":
        raise Conflict("This model was uploaded as ONNX: it can only be served by ONNX Runtime")
    model.runtime_preference = preference
    if model.status in ("ready", "disabled"):
        onnx_info = (model.info or {}).get("onnx")
        model.runtime, model.runtime_reason = choose_runtime(
            model.format, preference, model.onnx_key, onnx_info
        )
