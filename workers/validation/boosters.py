"""What an XGBoost or LightGBM object from a pickle may hold, checked before anything calls it;
and which library a model belongs to.

The allow-list (shared/allowlist_boosters.py) lets a pickle build the wrappers and their boosters;
`check_object` (called by workers/validation/audit.py on every object a model holds) decides what
they may hold: parameters that are plain data (a callable objective, metric or callback would be
called at prediction time), and a booster that XGBoost or LightGBM really loaded, whose trees are
well formed (shared/booster_trees.py).
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict, defaultdict
from typing import Any

import lightgbm
import numpy as np
import xgboost
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder

from shared.booster_trees import check_lightgbm_text, check_xgboost
from shared.safe_load import ModelLoadError, UnsafeModelError

_WRAPPERS = (xgboost.XGBModel, lightgbm.LGBMModel)
_PLAIN = (type(None), bool, int, float, str, np.bool_, np.integer, np.floating, np.str_)
# What a wrapper may hold besides plain data: its booster, a label encoder, arrays, and the
# random state it was given (the audit goes through each of these in turn).
_HELD = (
    xgboost.Booster,
    lightgbm.Booster,
    LabelEncoder,
    np.ndarray,
    np.random.RandomState,
    np.random.Generator,
)
# The only factories LightGBM gives the defaultdicts it pickles (best scores per data set).
_FACTORIES = (None, OrderedDict, dict, list)


def framework(estimator: Any) -> str:
    """ "xgboost" or "lightgbm" when the model (or a pipeline's last step) is their wrapper."""
    final = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    if isinstance(final, xgboost.XGBModel):
        return "xgboost"
    if isinstance(final, lightgbm.LGBMModel):
        return "lightgbm"
    return "sklearn"


def check_object(obj: object) -> None:
    """Raise UnsafeModelError or ModelLoadError for a booster object that must not be called."""
    if isinstance(obj, defaultdict) and obj.default_factory not in _FACTORIES:
        raise UnsafeModelError("model holds a defaultdict with a factory that is not allowed")
    if isinstance(obj, _WRAPPERS):
        _check_wrapper(obj)
    elif isinstance(obj, xgboost.Booster):
        _check_handle(getattr(obj, "handle", None), "XGBoost")
        check_xgboost(obj)
    elif isinstance(obj, lightgbm.Booster):
        _check_handle(getattr(obj, "_handle", None), "LightGBM")
        _check_plain(vars(obj).get("params", {}), "LightGBM booster params")
        check_lightgbm_text(obj.model_to_string(), int(obj.num_feature()))


def _check_wrapper(wrapper: BaseEstimator) -> None:
    """Every attribute is plain data or one of _HELD: no callable objective (XGBoost's and
    LightGBM's `objective`, `eval_metric`, LightGBM's `_objective`), no callbacks."""
    name = type(wrapper).__name__
    for attribute, value in vars(wrapper).items():
        if isinstance(value, _HELD):
            continue
        if callable(value):
            raise UnsafeModelError(f"{name}.{attribute} holds a callable: not allowed")
        _check_plain(value, f"{name}.{attribute}")
    booster = vars(wrapper).get("_Booster")
    expected = xgboost.Booster if isinstance(wrapper, xgboost.XGBModel) else lightgbm.Booster
    if not isinstance(booster, expected):
        raise ModelLoadError(f"{name} holds no {expected.__module__.split('.')[0]} booster")
    # Now, not when the booster's turn comes: the audit reads the wrapper's n_features_in_ first.
    _check_handle(vars(booster).get("handle", vars(booster).get("_handle")), name)


def _check_plain(value: Any, where: str, depth: int = 0) -> None:
    """Plain data (numbers, strings, None) in lists, tuples, dicts and arrays of them."""
    if depth > 8:
        raise UnsafeModelError(f"{where} is nested too deeply")
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, np.ndarray) and value.dtype != object:
        return
    if isinstance(value, dict):
        for item in [*value.keys(), *value.values()]:
            _check_plain(item, where, depth + 1)
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_plain(item, where, depth + 1)
        return
    raise UnsafeModelError(f"{where} holds a {type(value).__name__}: not allowed")


def _check_handle(handle: Any, label: str) -> None:
    # Only the booster's own __setstate__ makes one (a pickle cannot name ctypes).
    if not isinstance(handle, ctypes.c_void_p) or not handle.value:
        raise ModelLoadError(f"{label} booster was not loaded from a model")
