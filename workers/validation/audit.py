"""Audit a loaded model before anything calls it: parameters and the structures C code trusts.

The allow-list decides which classes a file may build; this decides what those objects may hold.
An estimator's parameters can make it do I/O (a vectorizer with `input="filename"` opens the path
its rows name, `Pipeline(memory=...)` writes a cache directory) or call things (`analyzer`,
`func`, `score_func`, ...), and a tree's node arrays are followed in C without bounds checks: a
child index pointing back at its parent loops forever with the GIL released, one out of range
reads or writes outside the array. Every object is visited once (a pickle may share one list
from many places), within a budget.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
from sklearn.neighbors import BallTree, KDTree
from sklearn.tree._tree import Tree

from shared.safe_load import ModelLoadError, UnsafeModelError, held_callables
from workers.validation import boosters

MAX_OBJECTS = 2_000_000
MAX_CLASSES = 100_000
_LABEL_TYPES = (str, int, float, bool, np.generic)
# Parameters that choose where input comes from: anything but content means reading files.
_IO_MODES = {"input": {"content"}}
# Parameters that name a place on disk when set.
_PATH_PARAMS = ("memory",)
# The only attributes where an estimator may hold a type, and which ones (below).
_TYPE_PARAMS = ("dtype",)
# Types an estimator may hold as a value (e.g. `OneHotEncoder(dtype=numpy.float64)`, or
# `make_column_selector(dtype_include=numpy.number)` for a ColumnTransformer).
_VALUE_TYPES = frozenset(
    {bool, int, float, str, object, np.number, np.integer, np.floating}
    | {getattr(np, n) for n in ("bool_", "float16", "float32", "float64", "object_", "str_")}
    | {getattr(np, f"{s}int{b}") for s in ("", "u") for b in (8, 16, 32, 64)}
)
# Keyword arguments an estimator passes to a callable it holds (FunctionTransformer's kw_args):
# plain values only, so no `out=` array that the call would write into.
_KWARGS_PARAMS = ("kw_args", "inv_kw_args")
_CALLABLE_KINDS = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    np.ufunc,
    functools.partial,
    type(np.mean),  # numpy's array-function dispatchers (np.mean, np.median, ...)
)


def audit_model(model: object) -> None:
    """Raise UnsafeModelError (I/O or a foreign callable) or ModelLoadError (a structure C code
    would follow out of bounds) for anything the model holds that inference must not meet."""
    for obj in _objects(model):
        boosters.check_object(obj)  # XGBoost's and LightGBM's objects
        if isinstance(obj, BaseEstimator):
            _check_params(obj)
            _check_estimator_trees(obj)
        elif isinstance(obj, type):
            if obj not in _VALUE_TYPES and not issubclass(obj, BaseEstimator | Exception):
                raise UnsafeModelError(f"model holds the type {_name(obj)}, which is not allowed")
        elif isinstance(obj, _CALLABLE_KINDS):
            _check_callable(obj)
        _check_structure(obj)


def _check_callable(func: Any) -> None:
    """Only the callables safe_load reviewed (HELD_CALLABLES), also inside a functools.partial
    (HistGradientBoosting keeps `partial(check_array, ...)`), with plain arguments."""
    target = func.func if isinstance(func, functools.partial) else func
    if target not in held_callables():
        raise UnsafeModelError(f"model holds the callable {_name(target)}, which is not allowed")
    if isinstance(func, functools.partial) and not (
        _plain(list(func.args)) and _plain(dict(func.keywords))
    ):
        raise UnsafeModelError(f"model holds {_name(target)} with arguments that are not values")


def _plain(value: Any, depth: int = 0) -> bool:
    """A number, string, None, allowed type, or a small list/dict of them."""
    if value is None or isinstance(value, bool | int | float | str | np.generic):
        return True
    if isinstance(value, type):
        return value in _VALUE_TYPES
    if depth < 2 and isinstance(value, list | tuple):
        return len(value) <= 100 and all(_plain(v, depth + 1) for v in value)
    if depth < 2 and isinstance(value, dict):
        return len(value) <= 100 and all(
            isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items()
        )
    return False


def check_classes(classes: Any) -> None:
    """`classes_` must be a flat array or list of plain labels: it is copied into the model's
    record, and a pickle can make a nested list whose paths number in the billions."""
    if classes is not None and not _flat_labels(classes):
        raise ModelLoadError(f"classes_ must be a flat list of at most {MAX_CLASSES} labels")


def _flat_labels(classes: Any) -> bool:
    if isinstance(classes, np.ndarray):
        if classes.ndim != 1 or len(classes) > MAX_CLASSES:
            return False
        return classes.dtype != object or all(isinstance(c, _LABEL_TYPES) for c in classes)
    if isinstance(classes, list | tuple):  # never np.asarray: it would follow every path
        return len(classes) <= MAX_CLASSES and all(isinstance(c, _LABEL_TYPES) for c in classes)
    return False


def _objects(root: object) -> Iterator[object]:
    stack, seen = [root], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, str | bytes | int | float):
            continue
        seen.add(id(obj))
        if len(seen) > MAX_OBJECTS:
            raise ModelLoadError(f"model holds more than {MAX_OBJECTS} objects")
        yield obj
        stack.extend(_members(obj))


def _members(obj: object) -> list[Any]:
    if isinstance(obj, list | tuple | set | frozenset):
        return list(obj)
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, np.ndarray):
        return obj.ravel().tolist() if obj.dtype == object else []
    if isinstance(obj, (type, types.ModuleType, *_CALLABLE_KINDS)):
        return []
    if not hasattr(obj, "__dict__"):
        return []
    return [value for value in vars(obj).values() if not _own_method(obj, value)]


def _own_method(obj: object, value: Any) -> bool:
    """A function of the object's own class, set by its code (IsotonicRegression's interpolator
    picks one of its methods when scikit-learn rebuilds it); a file can only name functions
    through the allow-list."""
    return (
        isinstance(value, types.FunctionType) and getattr(type(obj), value.__name__, None) is value
    )


def _check_params(estimator: BaseEstimator) -> None:
    name = type(estimator).__name__
    params = vars(estimator)
    for param, allowed in _IO_MODES.items():
        value = params.get(param)
        if isinstance(value, str) and value not in allowed:
            raise UnsafeModelError(f"{name}({param}={value[:20]!r}) reads files: not allowed")
    for param in _PATH_PARAMS:
        if params.get(param) is not None:
            raise UnsafeModelError(f"{name}({param}=...) writes to disk: set it to None")
    for param in _KWARGS_PARAMS:
        if not _plain(params.get(param)):
            raise UnsafeModelError(f"{name}.{param} holds something that is not a plain value")
    for param, value in params.items():
        # A type is a callable too (the review's vectorizer had analyzer=numpy.float64).
        if isinstance(value, type) and param not in _TYPE_PARAMS:
            raise UnsafeModelError(f"{name}.{param} holds the type {_name(value)}: not allowed")


def _check_structure(obj: object) -> None:
    if isinstance(obj, Tree):
        check_tree(obj, obj.n_features)
    elif isinstance(obj, KDTree | BallTree):
        check_neighbors_tree(obj)


def _check_estimator_trees(estimator: BaseEstimator) -> None:
    """Trees against the number of columns their estimator lets through to them (the tree's own
    count comes from the same file)."""
    n_features = getattr(estimator, "n_features_in_", None)
    if not isinstance(n_features, int):
        return
    tree = getattr(estimator, "tree_", None)
    if isinstance(tree, Tree):
        check_tree(tree, n_features)
    predictors = getattr(estimator, "_predictors", None)
    if predictors is not None:
        categorical = getattr(getattr(estimator, "_bin_mapper", None), "is_categorical_", None)
        for predictor in np.ravel(np.asarray(predictors, dtype=object)):
            if not isinstance(predictor, TreePredictor):
                raise ModelLoadError("gradient boosting model holds a tree of the wrong kind")
            check_tree_predictor(predictor, n_features, categorical)


def check_tree(tree: Tree, n_features: int) -> None:
    """A scikit-learn decision tree: every split's children come after it and inside the node
    array (so no path can loop), leaves have none, features exist, thresholds are numbers
    (+inf included: scikit-learn's split of missing from present values sends every number
    left and NaN right)."""
    count = tree.node_count
    left, right = tree.children_left, tree.children_right
    if len(left) != count or len(right) != count or tree.value.shape[0] != count or count < 1:
        raise ModelLoadError("decision tree arrays disagree with its node count")
    _check_children(left, right, np.arange(count), count, leaf=-1)
    split = left != -1
    _check_features(tree.feature[split], min(n_features, tree.n_features))
    thresholds = tree.threshold[split]
    if np.any(np.isnan(thresholds)) or np.any(thresholds == -np.inf):
        raise ModelLoadError("decision tree has a split with a threshold that is not a number")


def check_tree_predictor(
    predictor: TreePredictor, n_features: int, categorical: np.ndarray | None
) -> None:
    """A histogram gradient boosting tree: the same rules, plus categorical splits only on
    categorical features, with category bitsets in range."""
    nodes = predictor.nodes
    count = len(nodes)
    if count < 1:
        raise ModelLoadError("gradient boosting tree has no nodes")
    split = ~nodes["is_leaf"].astype(bool)
    index = np.arange(count)
    _check_children(nodes["left"][split], nodes["right"][split], index[split], count, leaf=None)
    _check_features(nodes["feature_idx"][split], n_features)
    if np.any(np.isnan(nodes["num_threshold"][split])):
        raise ModelLoadError("gradient boosting tree has a split with a threshold that is NaN")
    on_categories = split & nodes["is_categorical"].astype(bool)
    if not on_categories.any():
        return
    bitsets = len(predictor.raw_left_cat_bitsets)
    if np.any(nodes["bitset_idx"][on_categories] >= bitsets):
        raise ModelLoadError("gradient boosting tree points at a category set it does not have")
    features = nodes["feature_idx"][on_categories]
    if categorical is None or len(categorical) != n_features or not np.all(categorical[features]):
        raise ModelLoadError("gradient boosting tree splits on categories of a numeric feature")


def check_neighbors_tree(tree: KDTree | BallTree) -> None:
    """A KD or ball tree: its index array is a permutation of the data rows and every node's
    range lies inside it."""
    data, index, nodes, _ = tree.get_arrays()
    n = len(data)
    if len(index) != n or not np.array_equal(np.sort(index), np.arange(n)):
        raise ModelLoadError("neighbors tree index does not match its data")
    start, end = nodes["idx_start"], nodes["idx_end"]
    if np.any(start < 0) or np.any(end > n) or np.any(start > end):
        raise ModelLoadError("neighbors tree node points outside its data")


def _check_children(
    left: np.ndarray, right: np.ndarray, parent: np.ndarray, count: int, leaf: int | None
) -> None:
    splits = np.ones(len(left), dtype=bool) if leaf is None else left != leaf
    if leaf is not None and np.any(right[~splits] != leaf):
        raise ModelLoadError("decision tree leaf has a child")
    for child in (left[splits], right[splits]):
        if np.any(child <= parent[splits]) or np.any(child >= count):
            raise ModelLoadError("tree node points at a child out of order or out of range")


def _check_features(features: np.ndarray, n_features: int) -> None:
    if np.any(features < 0) or np.any(features >= n_features):
        raise ModelLoadError("tree split reads a feature the model does not have")


def _name(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    return f"{module}.{getattr(obj, '__qualname__', type(obj).__name__)}"[:120]
