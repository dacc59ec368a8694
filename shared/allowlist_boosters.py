"""The globals an XGBoost or LightGBM scikit-learn wrapper's pickle references, kept apart from
scikit-learn's list and merged into shared.safe_load.ALLOWED_GLOBALS.

Recorded by pickling fitted XGBClassifier, XGBRegressor, LGBMClassifier and LGBMRegressor models,
alone and inside a Pipeline (tests/shared/test_allowlist_boosters.py checks that this table is
exactly what they need beyond scikit-learn's own names). Reviewed:

- ``xgboost.core.Booster`` rebuilds itself in ``__setstate__`` from ``state["handle"]``, a byte
  buffer handed to XGBoost's own deserialiser (``XGBoosterUnserializeFromBuffer``): no Python is
  called and no file is opened; anything but a writable buffer fails. ``builtins.bytearray`` is
  that buffer.
- ``lightgbm.basic.Booster`` rebuilds itself from ``state["_handle"]``, the model as text parsed
  by ``LGBM_BoosterLoadModelFromString``: no file either. Its ``best_score`` is a
  ``collections.defaultdict`` of ``collections.OrderedDict``.
- The wrappers themselves have no ``__reduce__`` or ``__setstate__`` of their own (plain BUILD).

What the loaded objects may hold (no callable objective, metric or callback; a real booster
handle) is checked after loading by workers/validation/boosters.py.
"""

from __future__ import annotations

BOOSTER_TABLE: dict[str, str] = {
    "builtins": "bytearray",
    "collections": "OrderedDict defaultdict",
    "lightgbm.basic": "Booster",
    "lightgbm.sklearn": "LGBMClassifier LGBMRegressor",
    "xgboost.core": "Booster",
    "xgboost.sklearn": "XGBClassifier XGBRegressor",
}

BOOSTER_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    (module, name) for module, names in BOOSTER_TABLE.items() for name in names.split()
)

# What to tell the owner of a model of a library that is not served, by its top-level module.
_ADVICE: dict[str, str] = {
    "catboost": "CatBoost models are not served: export yours to ONNX "
    "(model.save_model('model.onnx', format='onnx')) and upload the .onnx file",
    "torch": "PyTorch models are served as ONNX: export yours with torch.onnx.export "
    "and upload the .onnx file",
    "tensorflow": "TensorFlow models are served as ONNX: convert yours with tf2onnx "
    "and upload the .onnx file",
    "keras": "Keras models are served as ONNX: convert yours with tf2onnx "
    "and upload the .onnx file",
}


def advice(module: str) -> str:
    """What to do instead ("; export it to ONNX ...") for a global of a library that is not
    served; "" for any other."""
    text = _ADVICE.get(module.split(".", 1)[0])
    return f"; {text}" if text else ""
