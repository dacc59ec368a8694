"""shared.safe_load: real models load with identical predictions; malicious files are refused.

Every model is fitted here into tmp directories (no binary fixtures in the repository). Each
malicious payload is also run once through plain joblib.load to prove it is live, so a refusal
test can not pass by accident.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
import skops.io
from joblib.numpy_pickle import NumpyUnpickler
from joblib.numpy_pickle_compat import NDArrayWrapper
from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap
from sklearn._loss.loss import HalfMultinomialLoss
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    BaggingClassifier,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.feature_selection import SelectKBest, VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    PolynomialFeatures,
    StandardScaler,
)
from sklearn.svm import SVC, SVR, LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from shared import safe_load
from shared.safe_load import (
    ALLOWED_GLOBALS,
    ModelLoadError,
    UnsafeModelError,
    detect_format,
    load_joblib,
    load_model,
    load_skops,
    load_with_warnings,
)


def _fit_zoo() -> dict[str, tuple[BaseEstimator, object]]:
    """name -> (fitted estimator, rows to predict)."""
    xc, yc = make_classification(n_samples=120, n_features=5, n_informative=3, random_state=0)
    xm, ym = make_classification(
        n_samples=120, n_features=5, n_informative=3, n_classes=3, random_state=0
    )
    xr, yr = make_regression(n_samples=120, n_features=5, random_state=0)
    labels = np.where(yc == 1, "spam", "ham")
    df = pd.DataFrame(xc, columns=[f"f{i}" for i in range(5)])
    mixed = df.assign(color=np.array(["red", "green", "blue"])[np.arange(120) % 3])
    encode = ColumnTransformer(
        [("num", StandardScaler(), ["f0", "f1", "f2"]), ("cat", OneHotEncoder(), ["color"])]
    )
    scaled_lr = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression())])
    encoded_lr = Pipeline([("prep", encode), ("clf", LogisticRegression())])
    trees = {"n_estimators": 5, "random_state": 0}
    mlp = {"hidden_layer_sizes": (5,), "max_iter": 50, "random_state": 0}
    imputed_svc = make_pipeline(
        SimpleImputer(), PolynomialFeatures(2), VarianceThreshold(), LinearSVC()
    )
    calibrated = CalibratedClassifierCV(BaggingClassifier(n_estimators=3, random_state=0), cv=3)
    zoo: list[tuple[str, BaseEstimator, object, object]] = [
        ("lr_binary", LogisticRegression(), xc, yc),
        ("lr_multiclass", LogisticRegression(max_iter=500), xm, ym),
        ("linear_regression", LinearRegression(), xr, yr),
        ("ridge", Ridge(), xr, yr),
        ("rf_classifier", RandomForestClassifier(**trees), xm, ym),
        ("rf_regressor", RandomForestRegressor(**trees), xr, yr),
        ("gb_classifier", GradientBoostingClassifier(**trees), xc, yc),
        ("gb_multiclass", GradientBoostingClassifier(**trees), xm, ym),
        ("gb_regressor", GradientBoostingRegressor(**trees), xr, yr),
        ("hgb_classifier", HistGradientBoostingClassifier(max_iter=5), xc, yc),
        ("hgb_multiclass", HistGradientBoostingClassifier(max_iter=5), xm, ym),
        ("hgb_regressor", HistGradientBoostingRegressor(max_iter=5), xr, yr),
        ("tree_classifier", DecisionTreeClassifier(random_state=0), xc, yc),
        ("tree_regressor", DecisionTreeRegressor(random_state=0), xr, yr),
        ("extra_trees_classifier", ExtraTreesClassifier(**trees), xc, yc),
        ("extra_trees_regressor", ExtraTreesRegressor(**trees), xr, yr),
        ("svc_proba", SVC(probability=True, random_state=0), xc, yc),
        ("svr", SVR(), xr, yr),
        ("knn_classifier", KNeighborsClassifier(), xc, yc),
        ("knn_ball_tree", KNeighborsClassifier(algorithm="ball_tree"), xc, yc),
        ("knn_regressor", KNeighborsRegressor(), xr, yr),
        ("pipeline_dataframe", scaled_lr, df, yc),
        ("column_transformer", encoded_lr, mixed, yc),
        ("lr_string_labels", LogisticRegression(), xc, labels),
        ("rf_string_labels", RandomForestClassifier(**trees), xc, labels),
        ("mlp_classifier", MLPClassifier(**mlp), xc, yc),
        ("mlp_regressor", MLPRegressor(**mlp), xr, yr),
        ("gaussian_nb", GaussianNB(), xc, yc),
        ("kmeans", make_pipeline(StandardScaler(), KMeans(3, n_init=2, random_state=0)), xc, None),
        ("isolation_forest", IsolationForest(n_estimators=5, random_state=0), xc, None),
        ("imputer_linear_svc", imputed_svc, xc, yc),
        ("calibrated_bagging", calibrated, xc, yc),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLP convergence warnings
        return {name: (est.fit(x, y), x) for name, est, x, y in zoo}


MODEL_NAMES = [
    "lr_binary",
    "lr_multiclass",
    "linear_regression",
    "ridge",
    "rf_classifier",
    "rf_regressor",
    "gb_classifier",
    "gb_multiclass",
    "gb_regressor",
    "hgb_classifier",
    "hgb_multiclass",
    "hgb_regressor",
    "tree_classifier",
    "tree_regressor",
    "extra_trees_classifier",
    "extra_trees_regressor",
    "svc_proba",
    "svr",
    "knn_classifier",
    "knn_ball_tree",
    "knn_regressor",
    "pipeline_dataframe",
    "column_transformer",
    "lr_string_labels",
    "rf_string_labels",
    "mlp_classifier",
    "mlp_regressor",
    "gaussian_nb",
    "kmeans",
    "isolation_forest",
    "imputer_linear_svc",
    "calibrated_bagging",
]
KINDS = ["joblib", "joblib_compress3", "pickle5", "skops"]


def _write(est: object, path: Path, kind: str) -> Path:
    if kind == "joblib":
        joblib.dump(est, path)
    elif kind == "joblib_compress3":
        joblib.dump(est, path, compress=3)
    elif kind == "pickle5":
        with path.open("wb") as f:
            pickle.dump(est, f, protocol=5)
    else:
        skops.io.dump(est, path)
    return path


@pytest.fixture(scope="module")
def zoo() -> dict[str, tuple[BaseEstimator, object]]:
    models = _fit_zoo()
    assert sorted(models) == sorted(MODEL_NAMES)
    return models


@pytest.fixture(scope="module")
def zoo_files(zoo, tmp_path_factory) -> dict[tuple[str, str], Path]:
    root = tmp_path_factory.mktemp("zoo")
    return {
        (name, kind): _write(est, root / f"{name}.{kind}", kind)
        for name, (est, _) in zoo.items()
        for kind in KINDS
    }


def _assert_same_predictions(original: object, loaded: object, x: object) -> None:
    assert type(loaded) is type(original)
    np.testing.assert_array_equal(loaded.predict(x), original.predict(x))
    if hasattr(original, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(x), original.predict_proba(x))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_zoo_model_loads_with_identical_predictions(zoo, zoo_files, name, kind):
    path = zoo_files[name, kind]
    fmt = detect_format(path.read_bytes()[:16], path.name)
    assert fmt == ("skops" if kind == "skops" else "joblib")
    original, x = zoo[name]
    _assert_same_predictions(original, load_model(path, fmt), x)


def test_the_zoo_needs_only_allowed_globals(zoo_files):
    """The generated list (tests/shared/test_allowlist.py) covers every model of the zoo."""
    recorded: set[tuple[str, str]] = set()

    class Recorder(NumpyUnpickler):  # unrestricted: only ever fed the zoo fitted above
        def find_class(self, module, name):
            recorded.add((module, name))
            return super().find_class(module, name)

    for (_, kind), path in zoo_files.items():
        if kind != "skops":
            with path.open("rb") as f, _validate_fileobject_and_memmap(f, str(path)) as (fobj, _):
                Recorder(str(path), fobj, True).load()
    assert recorded <= ALLOWED_GLOBALS, sorted(recorded - ALLOWED_GLOBALS)
    assert not any(
        module.startswith("joblib") and name != "NumpyArrayWrapper"
        for module, name in ALLOWED_GLOBALS
    )


def test_skops_values_list_is_what_the_zoo_needs_beyond_allowed_globals(zoo_files):
    """Every extra type admitted for skops files is one the zoo's files use (or a documented
    builtin/numpy value type): the list cannot grow unnoticed."""
    from zipfile import ZipFile

    from skops.io._audit import get_tree
    from skops.io._utils import read_schema

    used: set[tuple[str, str]] = set()
    for (_, kind), path in zoo_files.items():
        if kind == "skops":
            with ZipFile(path) as archive:
                tree = get_tree(*read_schema(archive), trusted=[])
            stack = [tree]
            while stack:
                node = stack.pop()
                used.add((node.module_name, node.class_name))
                for child in node.children.values():
                    items = child.values() if isinstance(child, dict) else child
                    stack.extend(
                        c
                        for c in (items if isinstance(child, list | dict) else [child])
                        if hasattr(c, "children")
                    )
    extra = used - ALLOWED_GLOBALS
    assert extra <= safe_load._SKOPS_VALUES, sorted(extra - safe_load._SKOPS_VALUES)
    assert {("numpy.random.mtrand", "RandomState"), ("builtins", "dict")} <= extra


# --- format detection and broken files ------------------------------------------------------


@pytest.mark.parametrize("compress", ["zlib", "gzip", "bz2", "lzma", "xz"])
def test_every_joblib_compressor_is_detected_and_loads(zoo, tmp_path, compress):
    est, x = zoo["rf_classifier"]
    path = tmp_path / "model.joblib"
    joblib.dump(est, path, compress=(compress, 3))
    assert detect_format(path.read_bytes()[:16], None) == "joblib"
    _assert_same_predictions(est, load_joblib(path), x)


@pytest.mark.parametrize(
    ("head", "filename", "expected"),
    [
        (b"hello, world\n", "model.joblib", None),
        (b"x marks the spot", "model.pkl", None),  # "x" is joblib's zlib prefix, not a header
        (b"", None, None),
        (b"\x80\x02csklearn", "model.pkl", None),  # protocol 2 is refused
        (b"(dp0\nS'a'\n", "model.pkl", None),  # protocol 0
        (b"\x80\x03}q\x00", None, "joblib"),
        (b"\x80\x05\x95\x00", None, "joblib"),
        (b"PK\x03\x04\x14\x00", "model.skops", "skops"),
        (b"\x08\x07\x12\x07skl2onnx", "model.ONNX", "onnx"),
        (b"\x08\x07\x12\x07skl2onnx", "model.bin", None),
    ],
)
def test_detect_format(head, filename, expected):
    assert detect_format(head, filename) == expected


@pytest.mark.parametrize("protocol", [0, 2])
def test_old_pickle_protocols_are_refused(zoo, tmp_path, protocol):
    path = tmp_path / "old.pkl"
    with path.open("wb") as f:
        pickle.dump(zoo["lr_binary"][0], f, protocol=protocol)
    assert detect_format(path.read_bytes()[:16], path.name) is None
    with pytest.raises(ModelLoadError, match="protocol"):
        load_joblib(path)


@pytest.mark.parametrize("compress", [0, 3])
def test_truncated_joblib_file_is_a_load_error(zoo, tmp_path, compress):
    path = tmp_path / "model.joblib"
    joblib.dump(zoo["rf_classifier"][0], path, compress=compress)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelLoadError) as info:
        load_joblib(path)
    assert not isinstance(info.value, UnsafeModelError)


@pytest.mark.parametrize("content", [b"", b"just some text\n", b"\x80\x04garbage"])
def test_junk_is_a_load_error(tmp_path, content):
    path = tmp_path / "junk.pkl"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError):
        load_joblib(path)
    with pytest.raises(ModelLoadError):
        load_skops(path)


def test_load_model_does_not_handle_onnx_or_unknown_formats(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07")
    with pytest.raises(ModelLoadError, match="ONNX"):
        load_model(path, "onnx")
    with pytest.raises(ModelLoadError, match="unsupported"):
        load_model(path, "tensorflow")


def test_numpy1_spellings_load_without_deprecation_warning(tmp_path):
    path = tmp_path / "numpy1.pkl"
    value = {"array": np.arange(3.0), "scalar": np.float64(1.5)}
    # Protocol 3 writes globals as "module\nname\n" lines, so renaming the module is a byte edit.
    data = pickle.dumps(value, protocol=3).replace(b"numpy._core", b"numpy.core")
    assert b"numpy.core.multiarray\n_reconstruct" in data
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_joblib(path)
    np.testing.assert_array_equal(loaded["array"], value["array"])
    assert loaded["scalar"] == 1.5


# --- malicious files ------------------------------------------------------------------------


class _Call:
    """Pickles as `func(*args)`: what every code-running payload boils down to."""

    def __init__(self, func: Callable, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _global_call(module: str, name: str, *args: object) -> bytes:
    """A protocol 4 pickle calling module.name(*args), for names pickle would spell differently."""
    name_ops = b"".join(b"\x8c" + bytes([len(s)]) + s.encode() for s in (module, name))
    arg_ops = pickle.dumps(args, protocol=2)[2:-1]  # without PROTO and STOP
    return b"\x80\x04" + name_ops + b"\x93" + arg_ops + b"R."


def _touch_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _protocol0_touch(marker: Path) -> str:
    return f"cos\nsystem\n(S'touch {marker}'\ntR."


def _savetxt_then_load(tmp_path: Path, marker: Path) -> list[_Call]:
    # numpy.load falls back to pickle.load (allow_pickle=True) on a file numpy.savetxt just wrote.
    side = tmp_path / "side.txt"
    text = np.array([_protocol0_touch(marker)])
    return [_Call(np.savetxt, str(side), text, "%s"), _Call(np.load, str(side), None, True)]


def _payload_savetxt_load(tmp_path: Path, marker: Path) -> bytes:
    return pickle.dumps(_savetxt_then_load(tmp_path, marker), protocol=4)


def _payload_compressed_lr(tmp_path: Path, marker: Path) -> bytes:
    x, y = make_classification(n_samples=40, n_features=3, n_informative=2, n_redundant=0)
    model = LogisticRegression().fit(x, y)
    model.notes_ = _savetxt_then_load(tmp_path, marker)
    joblib.dump(model, tmp_path / "lr.joblib", compress=3)
    return (tmp_path / "lr.joblib").read_bytes()


def _payload_ndarray_wrapper(tmp_path: Path, marker: Path) -> bytes:
    # joblib < 0.10 side files: NDArrayWrapper.read calls np.load(allow_pickle=True) on a path.
    (tmp_path / "side.npy").write_text(_protocol0_touch(marker))
    return pickle.dumps({"coef_": NDArrayWrapper("side.npy", np.ndarray)}, protocol=4)


def _payload_object_array(tmp_path: Path, marker: Path) -> bytes:
    array = np.array([_Call(os.system, f"touch {marker}")], dtype=object)
    joblib.dump({"classes_": array}, tmp_path / "objects.joblib")
    return (tmp_path / "objects.joblib").read_bytes()


PAYLOADS: dict[str, tuple[Callable[[Path, Path], bytes], str]] = {
    "os.system": (lambda t, m: _global_call("os", "system", f"touch {m}"), "os.system"),
    "builtins.eval": (
        lambda t, m: _global_call("builtins", "eval", _touch_code(m)),
        "builtins.eval",
    ),
    "runstring": (
        lambda t, m: _global_call("numpy.testing._private.utils", "runstring", _touch_code(m), {}),
        "numpy.testing._private.utils.runstring",
    ),
    "check_output": (
        lambda t, m: _global_call("sklearn.utils._testing", "check_output", ["touch", str(m)]),
        "sklearn.utils._testing.check_output",
    ),
    "run_python_script": (
        lambda t, m: _global_call(
            "sklearn.utils._testing", "assert_run_python_script_without_output", _touch_code(m)
        ),
        "assert_run_python_script_without_output",
    ),
    "myeval": (
        lambda t, m: _global_call("numpy.f2py.crackfortran", "myeval", _touch_code(m)),
        "numpy.f2py.crackfortran.myeval",
    ),
    "exec_command": (
        lambda t, m: _global_call("numpy.distutils.exec_command", "exec_command", f"touch {m}"),
        "numpy.distutils.exec_command.exec_command",
    ),
    "dotted_name": (
        lambda t, m: _global_call("numpy.testing._private.utils", "os.system", f"touch {m}"),
        "numpy.testing._private.utils.os.system",
    ),
    "savetxt_then_load": (_payload_savetxt_load, "numpy.savetxt"),
    "compressed_lr": (_payload_compressed_lr, "numpy.savetxt"),
    "ndarray_wrapper": (_payload_ndarray_wrapper, "joblib.numpy_pickle_compat.NDArrayWrapper"),
    "object_array": (_payload_object_array, "posix.system"),
}


def _write_payload(tmp_path: Path, name: str) -> tuple[Path, Path, str]:
    build, forbidden = PAYLOADS[name]
    marker = tmp_path / "pwned"
    path = tmp_path / "payload.joblib"
    path.write_bytes(build(tmp_path, marker))
    return path, marker, forbidden


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_payload_is_refused_without_side_effect(tmp_path, name):
    path, marker, forbidden = _write_payload(tmp_path, name)
    assert detect_format(path.read_bytes()[:16], path.name) == "joblib"
    with pytest.raises(UnsafeModelError, match=f"forbidden global .*{re.escape(forbidden)}"):
        load_joblib(path)
    assert not marker.exists()
    assert not (tmp_path / "side.txt").exists()


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_payload_is_live_under_plain_joblib_load(tmp_path, name):
    """Control: the payloads above really run code when loaded without restrictions."""
    if name == "exec_command":
        pytest.importorskip("numpy.distutils.exec_command")
    path, marker, _ = _write_payload(tmp_path, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.suppress(Exception):  # some payloads fail after their side effect
            joblib.load(path)
    assert marker.exists()


def _build_on_class() -> bytes:
    """Protocol 4: BUILD HalfMultinomialLoss with slot state {"predict_proba": 1} (monkey-patch)."""
    attr = b"predict_proba"
    state = b"N}X" + len(attr).to_bytes(4, "little") + attr + b"K\x01s\x86"
    return b"\x80\x04csklearn._loss.loss\nHalfMultinomialLoss\n" + state + b"b."


def _build_on_class_in_object_array(tmp_path: Path) -> bytes:
    # joblib writes an object array as a nested pickle stream; swap in the crafted one.
    array = np.array(["placeholder"], dtype=object)
    joblib.dump({"classes_": array}, tmp_path / "objects.joblib")
    data = (tmp_path / "objects.joblib").read_bytes()
    nested = pickle.dumps(array, protocol=5)
    assert data.count(nested) == 1
    return data.replace(nested, _build_on_class())


@pytest.mark.parametrize("where", ["top_level", "object_array"])
def test_build_on_a_class_is_refused(tmp_path, where):
    path = tmp_path / "patch.joblib"
    data = _build_on_class() if where == "top_level" else _build_on_class_in_object_array(tmp_path)
    path.write_bytes(data)
    original = HalfMultinomialLoss.__dict__["predict_proba"]
    try:  # control: plain joblib.load does patch the class (then may fail on the array)
        with contextlib.suppress(Exception):
            joblib.load(path)
        assert HalfMultinomialLoss.__dict__["predict_proba"] == 1
    finally:
        # Put the real method back: deleting it would break every later gradient-boosting
        # predict_proba in this process.
        HalfMultinomialLoss.predict_proba = original
    with pytest.raises(UnsafeModelError, match="HalfMultinomialLoss"):
        load_joblib(path)
    assert HalfMultinomialLoss.__dict__.get("predict_proba") != 1


# --- skops ----------------------------------------------------------------------------------


def test_skops_untrusted_type_is_refused(tmp_path):
    path = tmp_path / "evil.skops"
    skops.io.dump(Pipeline([("run", FunctionTransformer(func=os.system))]), path)
    assert detect_format(path.read_bytes()[:16], path.name) == "skops"
    with pytest.raises(UnsafeModelError, match=r"FunctionTransformer|posix\.system"):
        load_model(path, "skops")
    skops.io.dump({"call": os.system}, path)  # a bare function, not hidden in an estimator
    with pytest.raises(UnsafeModelError, match=r"posix\.system"):
        load_model(path, "skops")


def test_skops_reviewed_functions_load(tmp_path):
    """A FunctionNode naming a held callable (np.log1p, f_classif) is admitted, nothing else."""
    x, y = make_classification(n_samples=40, n_features=4, random_state=0)
    model = make_pipeline(
        FunctionTransformer(np.abs),
        FunctionTransformer(np.log1p, inverse_func=np.expm1),
        SelectKBest(k=2),
        LogisticRegression(),
    ).fit(x, y)
    path = tmp_path / "functions.skops"
    skops.io.dump(model, path)
    _assert_same_predictions(model, load_model(path, "skops"), x)
    skops.io.dump(FunctionTransformer(np.savetxt), path)
    with pytest.raises(UnsafeModelError, match="FunctionNode"):
        load_model(path, "skops")


def test_truncated_skops_file_is_a_load_error(zoo_files, tmp_path):
    path = tmp_path / "cut.skops"
    path.write_bytes(zoo_files["rf_classifier", "skops"].read_bytes()[:500])
    with pytest.raises(ModelLoadError):
        load_skops(path)


# --- version warnings -----------------------------------------------------------------------


class _OldVersionPickler(pickle.Pickler):
    """Pickles estimators as if written by scikit-learn 0.0.1."""

    def reducer_override(self, obj):
        if not isinstance(obj, BaseEstimator):
            return NotImplemented
        func, args, state, *rest = obj.__reduce_ex__(5)
        return (func, args, {**state, "_sklearn_version": "0.0.1"}, *rest)


def test_version_mismatch_becomes_a_warning_string(zoo, tmp_path):
    path = tmp_path / "old.pkl"
    with path.open("wb") as f:
        _OldVersionPickler(f, protocol=5).dump(zoo["pipeline_dataframe"][0])
    model, found = load_with_warnings(load_joblib, path)
    assert isinstance(model, Pipeline)
    assert found == [
        f"pickled with scikit-learn 0.0.1, running {sklearn.__version__} "
        "(StandardScaler, LogisticRegression, Pipeline)"
    ]


def test_no_warnings_for_a_current_file(zoo_files):
    _, found = load_with_warnings(load_joblib, zoo_files["lr_binary", "joblib"])
    assert found == []
