"""Which runtime serves a job, and under which cache key.

`models.runtime` already folds in the owner's preference (shared/runtime_choice.py), so a worker
only honours it. Each runtime is cached under its own artifact's hash: (model id, sha256 of the
joblib/skops file) for scikit-learn, (model id, sha256 of the .onnx file) for ONNX Runtime; a
PATCH that switches runtimes therefore never serves a stale entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.store import ArtifactStore
from workers.cache import CacheKey
from workers.onnx_runtime import OnnxRuntime
from workers.runtime import ModelRuntime, SklearnRuntime

Loader = Callable[[], ModelRuntime]


def cache_entry(ref: Any, store: ArtifactStore) -> tuple[CacheKey, int, Loader]:
    """(cache key, size estimate, loader) of the runtime the next job of `ref` must use.
    `ref` is a workers.inference.ModelRef whose `extra` holds the runtime columns."""
    model_id = str(ref.id)
    if ref.format == "onnx":  # uploaded as ONNX: the artifact itself
        path = store.local_path(ref.artifact_key)
        return (model_id, ref.sha256), ref.size_bytes, lambda: OnnxRuntime.load(path)
    extra = ref.extra or {}
    if extra.get("runtime") == "onnx" and extra.get("onnx_key"):
        path = store.local_path(extra["onnx_key"])
        size = int(extra.get("onnx_size_bytes") or 0)
        return (model_id, extra["onnx_sha256"]), size, lambda: OnnxRuntime.load(path)
    path = store.local_path(ref.artifact_key)
    return (
        (model_id, ref.sha256),
        ref.size_bytes,
        lambda: SklearnRuntime.load(path, ref.format, ref.input_schema),
    )
