"""Which runtime serves a job, and under which cache key.

`models.runtime` already folds in the owner's preference (shared/runtime_choice.py), so a worker
only honours it. Each runtime is cached under its own artifact's hash: (model id, sha256 of the
joblib/skops file) for scikit-learn, (model id, sha256 of the .onnx file) for ONNX Runtime; a
PATCH that switches runtimes therefore never serves a stale entry. A booster's own file (XGBoost
.json/.ubj, LightGBM text) is served by its library's runtime, under the file's hash.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from shared.store import ArtifactStore
from workers.runtimes.base import ModelRuntime
from workers.runtimes.cache import CacheKey
from workers.runtimes.lightgbm import LightGBMRuntime
from workers.runtimes.onnx import OnnxRuntime
from workers.runtimes.sklearn import SklearnRuntime
from workers.runtimes.xgboost import XGBoostRuntime

if TYPE_CHECKING:
    from workers.serving.model_refs import ModelRef

Loader = Callable[[], ModelRuntime]
# The runtime of each booster's own format (shared/booster_files.py).
NATIVE_RUNTIMES = {
    "xgboost_json": XGBoostRuntime,
    "xgboost_ubj": XGBoostRuntime,
    "lightgbm_txt": LightGBMRuntime,
}


def cache_entry(
    ref: ModelRef,
    store: ArtifactStore,
    rows: int = 1,
    onnx_max_rows: int = 0,
    missing: bool = False,
    scores: bool = False,
) -> tuple[CacheKey, int, Loader]:
    """(cache key, size estimate, loader) of the runtime a predict call over `rows` rows of
    `ref` must use; `missing` when some of them miss values, `scores` when the call must answer
    score_samples too (only scikit-learn has it).

    ONNX Runtime's win is the cost per call (a single-row forest predict is ~400x faster); per
    row, in big batches, scikit-learn is as fast or faster (a 100-tree forest over 100,000 rows:
    0.8 s against 1.2 s). So a call over more than ONNX_MAX_BATCH_ROWS rows goes to scikit-learn
    when the upload is a scikit-learn file: the answers are the same (checked at validation). So
    does a call with missing values when validation found the ONNX graph answering them otherwise
    (a forest's graph sends NaN down another branch than scikit-learn's trees)."""
    model_id = str(ref.id)

    # Paths are asked for inside the loaders: a remote store's local copy is needed only on a
    # miss of the model cache, and a hit must not touch the store.
    def upload() -> Path:
        return store.local_path(ref.artifact_key, ref.sha256)

    def compiled() -> Path:
        return store.local_path(ref.onnx_key, ref.onnx_sha256)

    if ref.format == "onnx":  # uploaded as ONNX: the artifact itself
        return (model_id, ref.sha256), ref.size_bytes, lambda: OnnxRuntime.load(upload())
    native = NATIVE_RUNTIMES.get(ref.format)
    if native is not None:  # a booster's own file: its library serves it
        return (model_id, ref.sha256), ref.size_bytes, lambda: native.load(upload(), ref.format)
    big = onnx_max_rows and rows > onnx_max_rows
    differs = missing and (ref.input_schema or {}).get("onnx_differs_on_missing")
    if ref.runtime == "onnx" and ref.onnx_key and not (big or differs or scores):
        size = int(ref.onnx_size_bytes or 0)
        return (model_id, ref.onnx_sha256), size, lambda: OnnxRuntime.load(compiled())
    return (
        (model_id, ref.sha256),
        ref.size_bytes,
        lambda: SklearnRuntime.load(upload(), ref.format, ref.input_schema),
    )
