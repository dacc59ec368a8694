"""Which runtime serves a predict call: the model's choice, except big calls of compiled
scikit-learn uploads, which go back to scikit-learn (faster per row in big batches)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from shared.store import get_store
from workers.runtimes.selection import cache_entry


def _ref(fmt: str = "joblib", runtime: str = "onnx") -> SimpleNamespace:
    mid = uuid.uuid4()
    return SimpleNamespace(
        id=mid,
        format=fmt,
        artifact_key=f"{mid}.{fmt}",
        sha256="skl-hash",
        size_bytes=20,
        input_schema=None,
        runtime=runtime,
        onnx_key=f"{mid}.onnx",
        onnx_sha256="onnx-hash",
        onnx_size_bytes=10,
    )


def _hash(ref, rows: int, limit: int) -> str:
    key, _, _ = cache_entry(ref, get_store(), rows, limit)
    return key[1]


def test_small_calls_use_onnx_big_calls_use_sklearn():
    ref = _ref()
    assert _hash(ref, 1, 5000) == "onnx-hash"
    assert _hash(ref, 5000, 5000) == "onnx-hash"
    assert _hash(ref, 5001, 5000) == "skl-hash"
    assert _hash(ref, 100_000, 0) == "onnx-hash"  # ONNX_MAX_BATCH_ROWS=0: never switch


def test_calls_with_missing_values_go_to_sklearn_where_onnx_differs_on_them():
    ref = _ref()
    key, _, _ = cache_entry(ref, get_store(), 1, 5000, missing=True)
    assert key[1] == "onnx-hash"  # equal on missing values too: ONNX serves them
    ref.input_schema = {"onnx_differs_on_missing": True}
    assert cache_entry(ref, get_store(), 1, 5000, missing=True)[0][1] == "skl-hash"
    assert cache_entry(ref, get_store(), 1, 5000, missing=False)[0][1] == "onnx-hash"


def test_onnx_uploads_and_sklearn_choices_never_switch():
    assert _hash(_ref(fmt="onnx"), 100_000, 5000) == "skl-hash"  # the .onnx upload itself
    assert _hash(_ref(runtime="sklearn"), 1, 5000) == "skl-hash"


def test_cache_entry_follows_models_runtime():
    ref = SimpleNamespace(
        id="m",
        format="joblib",
        sha256="a" * 64,
        size_bytes=10,
        artifact_key="m.joblib",
        input_schema=None,
        runtime="onnx",
        onnx_key="m.onnx",
        onnx_sha256="b" * 64,
        onnx_size_bytes=5,
    )
    store = SimpleNamespace(local_path=lambda key: key)
    assert cache_entry(ref, store)[:2] == (("m", "b" * 64), 5)
    ref.runtime = "sklearn"
    assert cache_entry(ref, store)[:2] == (("m", "a" * 64), 10)
    ref.format = "onnx"
    assert cache_entry(ref, store)[:2] == (("m", "a" * 64), 10)
