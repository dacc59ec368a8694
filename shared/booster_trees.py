"""The structure of XGBoost and LightGBM trees, checked before anything predicts with them.

Both libraries walk a tree's child indices in C++ as the file gave them: a child pointing back at
its parent loops forever, one out of range reads outside the node arrays, a split on a feature the
model does not have reads past the row. So every split's children must come after it and inside
the tree (no path can loop), leaves be leaves, features exist. Categorical splits are checked
against their category tables.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from shared.safe_load import ModelLoadError


def check_xgboost(booster: Any) -> None:
    """Every tree of an xgboost.Booster, read back from XGBoost's own JSON of it."""
    learner = json.loads(bytes(booster.save_raw("json")))["learner"]
    n_features = int(learner["learner_model_param"]["num_feature"])
    gbm = learner["gradient_booster"]
    if gbm.get("name") == "gblinear":
        return  # one weight per feature and class, sized by XGBoost itself
    if gbm.get("name") == "dart":
        gbm = gbm["gbtree"]
    if gbm.get("name") != "gbtree":
        raise ModelLoadError(f"XGBoost booster {str(gbm.get('name'))[:40]!r} is not supported")
    for tree in gbm["model"]["trees"]:
        _check_xgboost_tree(tree, n_features)


def _check_xgboost_tree(tree: dict[str, Any], n_features: int) -> None:
    count = int(tree["tree_param"]["num_nodes"])
    left, right = _ints(tree["left_children"]), _ints(tree["right_children"])
    features, kinds = _ints(tree["split_indices"]), _ints(tree["split_type"])
    if count < 1 or not len(left) == len(right) == len(features) == len(kinds) == count:
        raise ModelLoadError("XGBoost tree arrays disagree with its node count")
    split = left != -1
    if np.any(right[~split] != -1):
        raise ModelLoadError("XGBoost tree leaf has a child")
    _check_children(left[split], right[split], np.arange(count)[split], count)
    _check_features(features[split], n_features)
    if np.any(kinds[split] != 0):
        raise ModelLoadError("XGBoost models with categorical splits are not supported")


def check_lightgbm_text(text: str, n_features: int) -> None:
    """Every tree of a LightGBM model, read from its text (as model_to_string writes it)."""
    for section in text.split("\nTree=")[1:]:
        _check_lightgbm_tree(_fields(section.split("\nend of trees", 1)[0]), n_features)


def _fields(section: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in section.splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def _check_lightgbm_tree(fields: dict[str, str], n_features: int) -> None:
    leaves = int(fields.get("num_leaves", "0"))
    if leaves < 1:
        raise ModelLoadError("LightGBM tree has no leaves")
    if leaves == 1:
        return  # a constant: no splits
    splits = leaves - 1
    left, right = _ints(fields.get("left_child")), _ints(fields.get("right_child"))
    features, kinds = _ints(fields.get("split_feature")), _ints(fields.get("decision_type"))
    if not len(left) == len(right) == len(features) == len(kinds) == splits:
        raise ModelLoadError("LightGBM tree arrays disagree with its number of leaves")
    parent = np.arange(splits)
    for child in (left, right):
        internal = child >= 0
        if np.any(child[internal] <= parent[internal]) or np.any(child[internal] >= splits):
            raise ModelLoadError("tree node points at a child out of order or out of range")
        if np.any(~child[~internal] >= leaves):
            raise ModelLoadError("LightGBM tree points at a leaf it does not have")
    _check_features(features, n_features)
    if fields.get("is_linear", "0") != "0":
        _check_features(_ints(fields.get("leaf_features")), n_features)
    _check_lightgbm_categories(fields, (kinds & 1).astype(bool))


def _check_lightgbm_categories(fields: dict[str, str], categorical: np.ndarray) -> None:
    if not categorical.any():
        return
    tables = int(fields.get("num_cat", "0"))
    bounds = _ints(fields.get("cat_boundaries"))
    words = _ints(fields.get("cat_threshold"))
    index = _ints(fields.get("threshold"), float)[categorical]
    valid_bounds = len(bounds) == tables + 1 and bounds[0] == 0 and np.all(np.diff(bounds) >= 0)
    if tables < 1 or not valid_bounds or bounds[-1] != len(words):
        raise ModelLoadError("LightGBM tree has malformed category tables")
    if np.any(index < 0) or np.any(index >= tables) or np.any(index != np.floor(index)):
        raise ModelLoadError("LightGBM tree points at a category table it does not have")


def _check_children(left: np.ndarray, right: np.ndarray, parent: np.ndarray, count: int) -> None:
    for child in (left, right):
        if np.any(child <= parent) or np.any(child >= count):
            raise ModelLoadError("tree node points at a child out of order or out of range")


def _check_features(features: np.ndarray, n_features: int) -> None:
    if np.any(features < 0) or np.any(features >= n_features):
        raise ModelLoadError("tree split reads a feature the model does not have")


def _ints(values: Any, kind: type = np.int64) -> np.ndarray:
    """A JSON list, or a LightGBM line of space-separated numbers, as an array."""
    try:
        if isinstance(values, str):
            return np.array(values.split(), dtype=np.float64).astype(kind)
        return np.asarray(values if values is not None else [], dtype=kind)
    except (TypeError, ValueError, OverflowError):
        raise ModelLoadError("tree arrays of the model are not numbers") from None
