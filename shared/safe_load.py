"""Safe loading of uploaded model files (joblib/pickle and skops).

Unpickling runs code chosen by the file. A module-prefix allow-list (``sklearn.*``, ``numpy.*``) is
not enough: those packages contain helpers that exec, eval or spawn processes (see FACTS.md, "Safe
loading of uploaded joblib/pickle files"). So the joblib loader admits an exact set of
``(module, name)`` globals and refuses BUILD on classes, functions and modules (which would let a
file monkey-patch an allowed class for every later model in the process).

This is not memory safety: a crafted ``Tree`` can still crash ``predict``. Load and predict only in
worker processes.
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
from joblib.numpy_pickle_utils import _ensure_native_byte_order, _validate_fileobject_and_memmap


class ModelLoadError(Exception):
    """The file is corrupt, truncated, of an unsupported kind, or not a model."""


class UnsafeModelError(ModelLoadError):
    """The file references a forbidden global or tries something not allowed."""


# Recorded by unpickling real models of the test zoo (tests/shared/test_safe_load.py checks that
# this set equals what the zoo needs plus _EXTRA_GLOBALS). Adding a model family means adding it
# to the zoo first; never add a name without reading what it does when called.
_RECORDED: dict[str, str] = {
    "builtins": "slice",
    "joblib.numpy_pickle": "NumpyArrayWrapper",
    "numpy": "dtype ndarray float64",
    "numpy._core.multiarray": "_reconstruct scalar",
    "numpy._core.numeric": "_frombuffer",
    "numpy.random._mt19937": "MT19937",
    "numpy.random._pcg64": "PCG64",
    "numpy.random._pickle": "__bit_generator_ctor __generator_ctor __randomstate_ctor",
    "numpy.random.bit_generator": "SeedSequence __pyx_unpickle_SeedSequence",
    "sklearn._loss._loss": (
        "CyHalfBinomialLoss CyHalfMultinomialLoss CyHalfSquaredError "
        "__pyx_unpickle_CyHalfMultinomialLoss"
    ),
    "sklearn._loss.link": "IdentityLink Interval LogitLink MultinomialLogit",
    "sklearn._loss.loss": "HalfBinomialLoss HalfMultinomialLoss HalfSquaredError",
    "sklearn.compose._column_transformer": "ColumnTransformer",
    "sklearn.dummy": "DummyClassifier DummyRegressor",
    "sklearn.ensemble._forest": (
        "ExtraTreesClassifier ExtraTreesRegressor RandomForestClassifier RandomForestRegressor"
    ),
    "sklearn.ensemble._gb": "GradientBoostingClassifier GradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.binning": "_BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting": (
        "HistGradientBoostingClassifier HistGradientBoostingRegressor"
    ),
    "sklearn.ensemble._hist_gradient_boosting.predictor": "TreePredictor",
    "sklearn.linear_model._base": "LinearRegression",
    "sklearn.linear_model._logistic": "LogisticRegression",
    "sklearn.linear_model._ridge": "Ridge",
    "sklearn.metrics._dist_metrics": "EuclideanDistance64 newObj",
    "sklearn.naive_bayes": "GaussianNB",
    "sklearn.neighbors._ball_tree": "BallTree newObj",
    "sklearn.neighbors._classification": "KNeighborsClassifier",
    "sklearn.neighbors._kd_tree": "KDTree newObj",
    "sklearn.neighbors._regression": "KNeighborsRegressor",
    "sklearn.neural_network._multilayer_perceptron": "MLPClassifier MLPRegressor",
    "sklearn.neural_network._stochastic_optimizers": "AdamOptimizer",
    "sklearn.pipeline": "Pipeline",
    "sklearn.preprocessing._data": "StandardScaler",
    "sklearn.preprocessing._encoders": "OneHotEncoder",
    "sklearn.preprocessing._label": "LabelBinarizer LabelEncoder",
    "sklearn.svm._classes": "SVC SVR",
    "sklearn.tree._classes": (
        "DecisionTreeClassifier DecisionTreeRegressor ExtraTreeClassifier ExtraTreeRegressor"
    ),
    "sklearn.tree._tree": "Tree",
}

# Not produced by the zoo but harmless and expected: the numpy 1.x spellings of the array
# reconstructors, and numeric scalar types (estimators keep them as `dtype=` parameters).
_EXTRA: dict[str, str] = {
    "numpy.core.multiarray": "_reconstruct scalar",
    "numpy.core.numeric": "_frombuffer",
    "numpy": "bool_ float16 float32 int8 int16 int32 int64 uint8 uint16 uint32 uint64",
}


def _flatten(table: dict[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset((module, name) for module, names in table.items() for name in names.split())


_EXTRA_GLOBALS: frozenset[tuple[str, str]] = _flatten(_EXTRA)
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = _flatten(_RECORDED) | _EXTRA_GLOBALS

# numpy 2 keeps `numpy.core` only as a shim that warns on access; resolve old files' names from
# the new location so loading them does not emit a DeprecationWarning.
_RENAMED_MODULES: dict[str, str] = (
    {"numpy.core.multiarray": "numpy._core.multiarray", "numpy.core.numeric": "numpy._core.numeric"}
    if int(np.__version__.split(".")[0]) >= 2
    else {}
)

# Types skops refuses by default that the model zoo needs. Never extend this from
# `get_untrusted_types(file)`: that trusts whatever the uploaded file names.
SKOPS_TRUSTED: list[str] = [
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
]

_PICKLE_HEADERS = (b"\x80\x03", b"\x80\x04", b"\x80\x05")
# joblib.compressor's magic numbers (gzip, bz2, xz, lzma, lz4); zlib is checked separately because
# its one-byte joblib prefix (0x78, "x") would match plain text.
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x5d\x00\x00", b"\x04\x22\x4d\x18")
_ZIP_MAGIC = b"PK\x03\x04"


def detect_format(head: bytes, filename: str | None) -> str | None:
    """Guess the model format from the first bytes of a file (16 are enough) and its name.

    Returns "joblib" (pickle protocol >= 3, or a joblib-compressed file), "skops" (a zip file),
    "onnx" (by extension only: ONNX protobuf has no magic number) or None. Pickle protocols 0-2 are
    None on purpose: they need globals (`copy_reg._reconstructor`) that are not allowed.
    """
    if head.startswith(_PICKLE_HEADERS) or head.startswith(_COMPRESSED_MAGIC):
        return "joblib"
    if _is_zlib_header(head):
        return "joblib"
    if head.startswith(_ZIP_MAGIC):
        return "skops"
    if filename and filename.lower().endswith(".onnx"):
        return "onnx"
    return None


def _is_zlib_header(head: bytes) -> bool:
    # RFC 1950: deflate with a 32 KiB window, no preset dictionary, header checksum multiple of 31.
    return (
        len(head) >= 2
        and head[0] == 0x78
        and not head[1] & 0x20
        and (head[0] * 256 + head[1]) % 31 == 0
    )


def _resolve_global(module: str, name: str) -> Any:
    """The find_class of every unpickler here: exact pairs only, nothing dotted."""
    if "." in name or (module, name) not in ALLOWED_GLOBALS:
        raise UnsafeModelError(f"model file references forbidden global {module}.{name}")
    if (module, name) == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
        return _SafeNumpyArrayWrapper
    return getattr(importlib.import_module(_RENAMED_MODULES.get(module, module)), name)


def _check_build_target(stack: list[Any]) -> None:
    """Refuse BUILD (set state) on a class, function or module: that would be a monkey-patch."""
    if len(stack) < 2:
        return  # malformed; the base load_build raises
    target = stack[-2]
    if isinstance(target, (type, types.ModuleType)) or inspect.isroutine(target):
        label = getattr(target, "__qualname__", None) or getattr(target, "__name__", "?")
        module = getattr(target, "__module__", None)
        qualified = f"{module}.{label}" if module else label
        raise UnsafeModelError(f"model file tries to set attributes of {qualified}")


class _Restricted:
    """find_class and BUILD restrictions shared by the outer and the object-array unpicklers."""

    stack: list[Any]

    def find_class(self, module: str, name: str) -> Any:
        return _resolve_global(module, name)

    def load_build(self) -> None:
        _check_build_target(self.stack)
        super().load_build()  # type: ignore[misc]


class _SafeUnpickler(_Restricted, NumpyUnpickler):
    """joblib's unpickler restricted to ALLOWED_GLOBALS and to BUILD on plain instances."""

    # pickle dispatches opcodes through this table, not through method lookup.
    dispatch = {**NumpyUnpickler.dispatch, pickle.BUILD[0]: _Restricted.load_build}


class _SafeInnerUnpickler(_Restricted, pickle._Unpickler):
    """Reads the nested pickle stream of an object-dtype array with the same restrictions.

    joblib 1.6 routes only find_class of that stream through the outer unpickler, not BUILD (a
    class could be patched from inside an object array), and joblib 1.5 used a bare pickle.load.
    """

    dispatch = {**pickle._Unpickler.dispatch, pickle.BUILD[0]: _Restricted.load_build}


class _SafeNumpyArrayWrapper(NumpyArrayWrapper):
    """What the allowed name NumpyArrayWrapper resolves to: reads object arrays safely."""

    def read_array(self, unpickler: Any, ensure_native_byte_order: bool) -> Any:
        dtype = getattr(self, "dtype", None)
        if not isinstance(dtype, np.dtype):
            raise ModelLoadError("malformed array record in joblib file")
        if not dtype.hasobject:
            return super().read_array(unpickler, ensure_native_byte_order)
        array = _SafeInnerUnpickler(unpickler.file_handle).load()
        if not isinstance(array, np.ndarray):
            raise ModelLoadError("malformed object array in joblib file")
        return _ensure_native_byte_order(array) if ensure_native_byte_order else array


def _check_pickle_protocol(fobj: BinaryIO) -> None:
    head = fobj.peek(2)[:2] if hasattr(fobj, "peek") else b""
    if head.startswith(_PICKLE_HEADERS):
        return
    if head[:1] == b"\x80" and len(head) == 2:
        raise ModelLoadError(
            f"pickle protocol {head[1]} is not supported: re-save with protocol 3 or later"
        )
    raise ModelLoadError("not a joblib/pickle file (protocol 3 or later)")


def load_joblib(path: Path) -> object:
    """Load a joblib (plain or compressed) or pickle (protocol >= 3) file restrictively.

    Raises UnsafeModelError for a forbidden global or a BUILD on a class, function or module;
    ModelLoadError for anything else that goes wrong.
    """
    filename = str(path)
    try:
        with (
            open(filename, "rb") as raw,
            _validate_fileobject_and_memmap(raw, filename) as (fobj, _),
        ):
            if isinstance(fobj, str):  # joblib < 0.10 "ZF" format: side files loaded via np.load
                raise ModelLoadError("joblib files older than 0.10 are not supported")
            _check_pickle_protocol(fobj)
            return _SafeUnpickler(filename, fobj, ensure_native_byte_order=True).load()
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot read joblib/pickle file: {_error_text(exc)}") from exc


def load_skops(path: Path) -> object:
    """Load a skops file, trusting only SKOPS_TRUSTED beyond skops' own defaults."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        return skops.io.load(path, trusted=SKOPS_TRUSTED)
    except UntrustedTypesFoundException as exc:
        raise UnsafeModelError(f"skops file uses untrusted types: {_untrusted(path, exc)}") from exc
    except Exception as exc:
        raise ModelLoadError(f"cannot read skops file: {_error_text(exc)}") from exc


def _untrusted(path: Path, exc: Exception) -> str:
    # The exception keeps the names only inside its message; ask skops again just to name them.
    import skops.io

    try:
        names = [n for n in skops.io.get_untrusted_types(file=path) if n not in SKOPS_TRUSTED]
    except Exception:
        return str(exc).split("\n", 1)[0]
    return ", ".join(names)


def load_model(path: Path, fmt: str) -> object:
    """Load a model file of format `fmt` ("joblib" or "skops"; see detect_format)."""
    if fmt == "joblib":
        return load_joblib(path)
    if fmt == "skops":
        return load_skops(path)
    if fmt == "onnx":
        raise ModelLoadError("ONNX models are not loaded by shared.safe_load")
    raise ModelLoadError(f"unsupported model format {fmt!r}")


def load_with_warnings(loader: Callable[[Path], object], path: Path) -> tuple[object, list[str]]:
    """Call `loader(path)` and return the object with the warnings it raised, as short strings.

    scikit-learn warns (InconsistentVersionWarning) when a file was pickled by another version;
    those become one line per version pair, e.g. "pickled with scikit-learn 1.5.0, running 1.9.1
    (LogisticRegression)".
    """
    # catch_warnings is process-global: fine in prefork workers, not across threads.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # else the registry hides repeats of an earlier warning
        obj = loader(path)
    return obj, _summarize_warnings([w.message for w in caught])


def _summarize_warnings(messages: list[Warning | str]) -> list[str]:
    versions: dict[tuple[str, str], list[str]] = {}
    others: list[str] = []
    for message in messages:
        original = getattr(message, "original_sklearn_version", None)
        current = getattr(message, "current_sklearn_version", None)
        if original is not None and current is not None:
            names = versions.setdefault((str(original), str(current)), [])
            name = str(getattr(message, "estimator_name", "?"))
            if name not in names:
                names.append(name)
            continue
        text = _error_text(message)
        if text not in others:
            others.append(text)
    lines = [
        f"pickled with scikit-learn {orig}, running {cur} ({', '.join(names)})"
        for (orig, cur), names in versions.items()
    ]
    return lines + others


def _error_text(exc: object, limit: int = 200) -> str:
    """ "EOFError: Ran out of input": type and first line, capped (messages may embed data)."""
    first_line = str(exc).strip().split("\n", 1)[0]
    text = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
