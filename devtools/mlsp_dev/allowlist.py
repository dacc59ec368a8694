"""Generate shared/allowlist_sklearn.py: the classes that pickles of scikit-learn estimators name.

`python -m mlsp_dev.allowlist` fits every class of `sklearn.utils.all_estimators()` on small
synthetic data (numbers, a DataFrame, string labels; text for the vectorizers; a few given the
parameters they need), pickles each fitted model with joblib and with pickle protocol 5, and
records the globals the unpickler is asked for. Classes go into the generated table; a function
may only be named by a pickle when it is on one of the reviewed lists in shared/safe_load.py
(the loaders that rebuild values, the callables a model may hold): a model whose pickle names
any other function is left out and reported. tests/shared/test_allowlist.py regenerates the
table and compares, so a scikit-learn upgrade shows up as a diff to review.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import pickle
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from joblib.numpy_pickle import NumpyUnpickler
from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap
from sklearn.base import is_classifier, is_regressor
from sklearn.utils import all_estimators

TARGET = Path(__file__).resolve().parents[2] / "shared" / "allowlist_sklearn.py"
_N, _FEATURES = 40, 4
Pair = tuple[str, str]


def _data() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=(_N, _FEATURES))) + 0.1  # positive: NMF, chi2, MultinomialNB
    y3 = np.arange(_N) % 3
    x[:, 0] += y3  # something to learn
    words = np.array(["red", "green", "blue", "cat", "dog", "fish"])
    return {
        "x": x,
        "frame": pd.DataFrame(x, columns=[f"f{i}" for i in range(_FEATURES)]),
        "y2": y3 % 2,
        "y3": y3,
        "labels": np.array(["low", "mid", "high"])[y3],
        "yr": x @ np.arange(1.0, _FEATURES + 1),
        "yr2": np.column_stack([x[:, 0], x[:, 1]]),
        "multilabel": np.column_stack([y3 % 2, (y3 + 1) % 2, y3 == 2]).astype(int),
        "text": [" ".join(words[(np.arange(3) + i) % 6]) for i in range(_N)],
        "dicts": [{"a": float(i), "b": str(words[i % 6])} for i in range(_N)],
    }


def _members(kind: str) -> list[tuple[str, Any]]:
    """Two base estimators for the ensembles that take a list of them."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    if kind == "classifiers":
        return [("lr", LogisticRegression()), ("tree", DecisionTreeClassifier(max_depth=2))]
    return [("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=2))]


def _special(name: str, cls: type, data: dict[str, Any]) -> Any:
    """Constructed with the parameters the class requires; None for the default constructor."""
    from sklearn.decomposition import PCA
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    clf, reg = LogisticRegression(), Ridge()
    table: dict[str, Callable[[], Any]] = {
        "ClassifierChain": lambda: cls(clf),
        "ColumnTransformer": lambda: cls(
            [("num", StandardScaler(), [0, 1]), ("cat", OneHotEncoder(), [2])],
            remainder=SimpleImputer(),
        ),
        "FeatureUnion": lambda: cls([("pca", PCA(2)), ("scale", StandardScaler())]),
        "FixedThresholdClassifier": lambda: cls(clf),
        "FrozenEstimator": lambda: cls(LogisticRegression().fit(data["x"], data["y2"])),
        "GridSearchCV": lambda: cls(clf, {"C": [0.1, 1.0]}, cv=2),
        "MultiOutputClassifier": lambda: cls(clf),
        "MultiOutputRegressor": lambda: cls(reg),
        "OneVsOneClassifier": lambda: cls(clf),
        "OneVsRestClassifier": lambda: cls(clf),
        "OutputCodeClassifier": lambda: cls(clf, random_state=0),
        "Pipeline": lambda: cls([("scale", StandardScaler()), ("clf", clf)]),
        "RFE": lambda: cls(clf),
        "RFECV": lambda: cls(clf, cv=2),
        "RandomizedSearchCV": lambda: cls(clf, {"C": [0.1, 1.0]}, n_iter=2, cv=2),
        "RegressorChain": lambda: cls(reg),
        "SelectFromModel": lambda: cls(clf),
        "SelfTrainingClassifier": lambda: cls(clf),
        "SequentialFeatureSelector": lambda: cls(clf, n_features_to_select=2, cv=2),
        "SparseCoder": lambda: cls(np.eye(_FEATURES)[:3]),
        "StackingClassifier": lambda: cls(_members("classifiers"), cv=2),
        "StackingRegressor": lambda: cls(_members("regressors"), cv=2),
        "TunedThresholdClassifierCV": lambda: cls(clf, cv=2),
        "VotingClassifier": lambda: cls(_members("classifiers"), voting="soft"),
        "VotingRegressor": lambda: cls(_members("regressors")),
        "FunctionTransformer": lambda: cls(func=np.log1p, inverse_func=np.expm1),
        "TransformedTargetRegressor": lambda: cls(func=np.log1p, inverse_func=np.expm1),
        "TSNE": lambda: cls(perplexity=5.0, max_iter=250),
        "LogisticRegressionCV": lambda: cls(cv=2),
        "GaussianRandomProjection": lambda: cls(n_components=2),
        "SparseRandomProjection": lambda: cls(n_components=2),
    }
    build = table.get(name)
    return build() if build else None


_MULTI_TARGET = {"RegressorChain", "MultiOutputRegressor", "CCA", "PLSCanonical", "PLSSVD"}


# What each family is fitted on, tried in order: every call that succeeds is recorded.
def _fit_calls(name: str, estimator: Any, data: dict[str, Any]) -> list[tuple[Any, ...]]:
    x, frame = data["x"], data["frame"]
    if name in {"CountVectorizer", "TfidfVectorizer", "HashingVectorizer"}:
        return [(data["text"],)]
    if name in {"DictVectorizer", "FeatureHasher"}:
        return [(data["dicts"],)]
    if name == "TfidfTransformer":
        return [(np.round(x * 3),)]
    if name in {"LabelBinarizer", "LabelEncoder"}:
        return [(data["y3"],), (data["labels"],)]
    if name == "MultiLabelBinarizer":
        return [([[1, 2], [3]],), ([["a"], ["b", "c"]],)]
    if name == "PatchExtractor":
        return [(np.abs(x[:4]).reshape(1, 4, 4),)]
    if name == "IsotonicRegression":
        return [(x[:, 0], data["yr"])]
    if name == "CategoricalNB":
        return [(np.round(x).astype(int), data["y3"])]
    if name in {"ClassifierChain", "MultiOutputClassifier"}:
        return [(x, data["multilabel"])]
    if name == "KernelCenterer":
        return [(x @ x.T,)]
    if name in _MULTI_TARGET or name.startswith("MultiTask"):
        return [(x, data["yr2"])]
    if is_classifier(estimator):
        return [(x, data["y2"]), (x, data["y3"]), (x, data["labels"]), (frame, data["y2"])]
    if is_regressor(estimator):
        return [(x, data["yr"]), (frame, data["yr"])]
    return [(x,), (x, data["y2"]), (frame,)]


def _recorded(model: Any) -> set[Pair]:
    """The globals a joblib dump and a protocol-5 pickle of `model` name."""
    found: set[Pair] = set()

    class Recorder(NumpyUnpickler):  # unrestricted: only fed models fitted here
        def find_class(self, module: str, name: str) -> Any:
            found.add((module, name))
            return super().find_class(module, name)

    stream = io.BytesIO()
    joblib.dump(model, stream)
    stream.seek(0)
    with _validate_fileobject_and_memmap(stream, "model") as (fobj, _):
        Recorder("model", fobj, True).load()
    Recorder("model", io.BytesIO(pickle.dumps(model, protocol=5)), True).load()
    return found


def _unreviewed_functions(pairs: set[Pair]) -> list[str]:
    from shared.safe_load import REVIEWED_FUNCTIONS

    names = []
    for module, name in sorted(pairs):
        obj = getattr(importlib.import_module(module), name)
        if not isinstance(obj, type) and (module, name) not in REVIEWED_FUNCTIONS:
            names.append(f"{module}.{name}")
    return names


# Parameters whose values pickle different internal classes (search trees and distance metrics
# of the neighbors estimators, losses and their links): each value is tried on every class of
# the package that has the parameter (elsewhere they only choose a computation).
_VARIANTS: dict[str, list[tuple[str, list[Any]]]] = {
    "algorithm": [("sklearn.neighbors", ["ball_tree", "kd_tree", "brute"])],
    "metric": [("sklearn.neighbors", ["manhattan", "chebyshev", "minkowski", "cosine"])],
    "loss": [
        (
            "sklearn.ensemble",
            ["absolute_error", "huber", "quantile", "poisson", "gamma", "exponential"],
        ),
        # SGD's losses are classes of their own (modified_huber is the one with predict_proba).
        (
            "sklearn.linear_model",
            [
                "hinge",
                "log_loss",
                "modified_huber",
                "squared_hinge",
                "perceptron",
                "squared_error",
                "huber",
                "epsilon_insensitive",
                "squared_epsilon_insensitive",
            ],
        ),
    ],
}


def _prototypes(name: str, cls: type, data: dict[str, Any]) -> Iterator[Any]:
    prototype = _special(name, cls, data) or cls()
    yield prototype
    params = prototype.get_params(deep=False)
    for param, variants in _VARIANTS.items():
        for package, values in variants:
            if param in params and cls.__module__.startswith(package):
                for value in values:
                    yield _with(prototype, param, value)


def _with(prototype: Any, param: str, value: Any) -> Any:
    from sklearn.base import clone

    try:
        return clone(prototype).set_params(**{param: value})
    except Exception:
        return None


def _fitted(name: str, cls: type, data: dict[str, Any]) -> Iterator[Any]:
    """Each fitted variant of one class (a fresh instance per call)."""
    from sklearn.base import clone

    try:
        prototypes = [p for p in _prototypes(name, cls, data) if p is not None]
        calls = _fit_calls(name, prototypes[0], data)
    except Exception:  # cannot be built without parameters this script does not know
        return
    for prototype in prototypes:
        for args in calls:
            estimator = clone(prototype) if name != "FrozenEstimator" else prototype
            with contextlib.suppress(Exception):  # not for this class (strings for a regressor)
                yield estimator.fit(*args)


def _table_frame(data: dict[str, Any]) -> pd.DataFrame:
    """Numbers with gaps, a string category with gaps, free text: what users fit pipelines on."""
    frame = data["frame"].copy()
    frame.loc[::7, "f1"] = np.nan
    frame["color"] = np.array(["red", "green", "blue", None], dtype=object)[np.arange(_N) % 4]
    frame["note"] = data["text"]
    return frame


def _recipes(data: dict[str, Any]) -> Iterator[Any]:
    """Composite models as they are shipped (their internals differ from the parts fitted alone)."""
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process import kernels as k
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers, frame = ["f0", "f1", "f2", "f3"], _table_frame(data)
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numbers),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
                ),
                ["color"],
            ),
            ("text", TfidfVectorizer(), "note"),
        ]
    )
    yield make_pipeline(prep, LogisticRegression()).fit(frame, data["labels"])
    by_dtype = ColumnTransformer(
        [
            ("num", SimpleImputer(), make_column_selector(dtype_include=np.number)),
            ("cat", OneHotEncoder(), make_column_selector(dtype_include=object, pattern="^c")),
        ]
    )
    yield make_pipeline(by_dtype, LogisticRegression()).fit(frame, data["y2"])
    native = HistGradientBoostingClassifier(max_iter=5, categorical_features="from_dtype")
    yield native.fit(frame[numbers].assign(color=frame["color"].astype("category")), data["y2"])
    for kernel in (
        k.Matern() + k.WhiteKernel(),
        k.ConstantKernel() * k.DotProduct() + k.RationalQuadratic(),
        k.ExpSineSquared(),
        k.PairwiseKernel(),
    ):
        yield GaussianProcessRegressor(kernel, optimizer=None).fit(data["x"][:, :1], data["yr"])


def generate() -> tuple[dict[str, list[str]], dict[str, str]]:
    """(module -> sorted class names, estimator -> why it was left out)."""
    data = _data()
    classes: set[Pair] = set()
    left_out: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, cls in all_estimators():
            pairs, fitted = set(), 0
            for model in _fitted(name, cls, data):
                fitted += 1
                pairs |= _recorded(model)
            unreviewed = _unreviewed_functions(pairs)
            if not fitted or unreviewed:
                left_out[name] = f"names {', '.join(unreviewed)}" if fitted else "did not fit"
                continue
            classes |= {p for p in pairs if isinstance(_resolve(p), type)}
        for recipe in _recipes(data):
            pairs = _recorded(recipe)
            unreviewed = _unreviewed_functions(pairs)
            if unreviewed:
                raise RuntimeError(f"{type(recipe).__name__} names {', '.join(unreviewed)}")
            classes |= {p for p in pairs if isinstance(_resolve(p), type)}
    table: dict[str, list[str]] = {}
    for module, name in sorted(classes):
        table.setdefault(module, []).append(name)
    return table, left_out


def _resolve(pair: Pair) -> Any:
    return getattr(importlib.import_module(pair[0]), pair[1])


def render(table: dict[str, list[str]]) -> str:
    """The generated module's source (ruff-formatted: one quoted line per module)."""
    import sklearn

    version = sklearn.__version__
    lines = [
        f'"""scikit-learn {version}: generated by `python -m mlsp_dev.allowlist`, do not edit.',
        "",
        "The classes named by pickles of every estimator of sklearn.utils.all_estimators(), fitted",
        "on small synthetic data; shared/safe_load.py admits them beside its reviewed functions.",
        '"""',
        "",
        "SKLEARN_CLASSES: dict[str, str] = {",
    ]
    for module, names in table.items():
        lines.extend(_entry(module, " ".join(names)))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _entry(module: str, names: str) -> list[str]:
    line = f'    "{module}": "{names}",'
    if len(line) <= 100:
        return [line]
    chunks = textwrap.wrap(names, 100 - 12, break_long_words=False)
    quoted = [f'        "{chunk} "' for chunk in chunks[:-1]] + [f'        "{chunks[-1]}"']
    return [f'    "{module}": (', *quoted, "    ),"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    table, left_out = generate()
    for name, reason in sorted(left_out.items()):
        print(f"left out {name}: {reason}", file=sys.stderr)
    source = render(table)
    if args.check:
        same = TARGET.exists() and TARGET.read_text() == source
        print("up to date" if same else f"{TARGET} differs: regenerate it")
        return 0 if same else 1
    TARGET.write_text(source)
    print(f"wrote {TARGET} ({sum(len(n) for n in table.values())} classes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
