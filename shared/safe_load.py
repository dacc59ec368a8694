"""Safe loading of uploaded model files (joblib/pickle and skops).

Unpickling runs code chosen by the file. A module-prefix allow-list (``sklearn.*``, ``numpy.*``) is
not enough: those packages contain helpers that exec, eval or spawn processes (docs/measurements.md,
"Safe loading: why prefix allow-lists are bypassable"). So the joblib loader admits an exact set of
``(module, name)`` globals (the classes generated into shared/allowlist_sklearn.py from every
scikit-learn estimator, and the reviewed functions below), refuses BUILD on classes, functions and
modules (which would let a file monkey-patch an allowed class for every later model in the
process), and refuses to call the functions a model may only hold (e.g. `numpy.log1p`).

Memory is bounded while reading: every read of the (decompressed) stream counts against a byte
budget, so a 1 KB bz2 file cannot expand to gigabytes and a pickle cannot ask for a 4 GB bytes
object in one read. skops files are walked node by node against the same exact list (skops' own
defaults trust every scikit-learn estimator and numpy ufuncs as callables).

This is not memory safety: a crafted ``Tree`` can still crash ``predict``;
workers/validation/audit.py checks their structure after loading. Load and predict only in worker
processes, first in the validation sandbox (workers/validation/sandbox.py).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import io
import pickle
import types
import warnings
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
from joblib.numpy_pickle_utils import _ensure_native_byte_order, _validate_fileobject_and_memmap

from shared.allowlist_boosters import BOOSTER_GLOBALS, advice
from shared.allowlist_sklearn import SKLEARN_CLASSES


class ModelLoadError(Exception):
    """The file is corrupt, truncated, of an unsupported kind, or not a model."""


class UnsafeModelError(ModelLoadError):
    """The file references a forbidden global or tries something not allowed."""


# Functions a pickle calls (REDUCE) to rebuild values, each read for what it does when called with
# arguments the file chooses: numpy's array, scalar and masked-array reconstructors, numpy.random's
# generator constructors, Cython's generated `__pyx_unpickle_*` (they check the type they are given,
# then set its state) and scikit-learn's `newObj` (`cls.__new__(cls)` on an allowed class).
_LOADERS: dict[str, str] = {
    "numpy._core.multiarray": "_reconstruct scalar",
    "numpy._core.numeric": "_frombuffer",
    "numpy.core.multiarray": "_reconstruct scalar",  # the numpy 1.x spellings
    "numpy.core.numeric": "_frombuffer",
    "numpy.ma.core": "_mareconstruct",
    "numpy.random._pickle": "__bit_generator_ctor __generator_ctor __randomstate_ctor",
    "numpy.random.bit_generator": "__pyx_unpickle_SeedSequence",
    "sklearn._loss._loss": "__pyx_unpickle_CyHalfMultinomialLoss",
    "sklearn.metrics._dist_metrics": "newObj",
    "sklearn.neighbors._ball_tree": "newObj",
    "sklearn.neighbors._kd_tree": "newObj",
}

# Callables a model may hold as a value (never call while loading: the unpickler refuses REDUCE
# on them). The transforms are what FunctionTransformer and TransformedTargetRegressor are used
# with, elementwise math on arrays; the rest are defaults some estimators keep: the univariate
# scores of the feature selectors, FeatureAgglomeration's pooling, a threshold tuner's metric,
# BisectingKMeans' inner k-means, SplineTransformer's array conversion, the input check
# HistGradientBoosting keeps (in a functools.partial) for its numeric columns.
TRANSFORM_FUNCTIONS: dict[str, str] = {
    "numpy": "absolute arcsinh arctan cbrt exp exp2 expm1 log log10 log1p log2 reciprocal sign "
    "sinh sqrt square tanh",
}
_HELD_FUNCTIONS: dict[str, str] = {
    "numpy": "mean median",
    "scipy._lib.array_api_compat.numpy._aliases": "asarray",
    "sklearn.cluster._kmeans": "_kmeans_single_elkan _kmeans_single_lloyd",
    "sklearn.feature_selection._mutual_info": "mutual_info_classif mutual_info_regression",
    "sklearn.feature_selection._univariate_selection": "chi2 f_classif f_regression r_regression",
    "sklearn.metrics._classification": "accuracy_score balanced_accuracy_score f1_score",
    "sklearn.utils.validation": "check_array",
}

# Numeric scalar types beyond those the generated list found (estimators keep them as `dtype=`).
_EXTRA: dict[str, str] = {
    "numpy": "bool_ float16 float32 float64 int8 int16 int32 int64 uint8 uint16 uint32 uint64",
}


def _flatten(table: dict[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset((module, name) for module, names in table.items() for name in names.split())


LOADER_FUNCTIONS = _flatten(_LOADERS)
HELD_CALLABLES = _flatten(TRANSFORM_FUNCTIONS) | _flatten(_HELD_FUNCTIONS)
# Every function a pickle may name; anything else it names must be a class.
REVIEWED_FUNCTIONS = LOADER_FUNCTIONS | HELD_CALLABLES
_EXTRA_GLOBALS: frozenset[tuple[str, str]] = _flatten(_EXTRA)
# Every pair above is audited by tests/shared/test_allowlist.py.
SKLEARN_GLOBALS = _flatten(SKLEARN_CLASSES) | REVIEWED_FUNCTIONS | _EXTRA_GLOBALS
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = SKLEARN_GLOBALS | BOOSTER_GLOBALS

# numpy 2 keeps `numpy.core` only as a shim that warns on access; resolve old files' names from
# the new location so loading them does not emit a DeprecationWarning.
_RENAMED_MODULES: dict[str, str] = (
    {"numpy.core.multiarray": "numpy._core.multiarray", "numpy.core.numeric": "numpy._core.numeric"}
    if int(np.__version__.split(".")[0]) >= 2
    else {}
)

# What a skops file may hold besides ALLOWED_GLOBALS: the containers and values skops writes
# itself. Every node of the file's tree must be of a kind in _SKOPS_NODES and name a type here or
# in ALLOWED_GLOBALS: skops' own defaults (every scikit-learn estimator, numpy and scipy ufuncs
# as callables) are never trusted.
_SKOPS_VALUES: frozenset[tuple[str, str]] = _flatten(
    {
        "builtins": "dict list tuple str int float bool NoneType slice bytes bytearray",
        "collections": "OrderedDict",
        "numpy": "ndarray bool_ float16 float32 float64 int8 int16 int32 int64 uint8 uint16 "
        "uint32 uint64 str_ object_",
        "numpy.random._generator": "Generator",
        "numpy.random.mtrand": "RandomState",
    }
)
# MethodNode, PartialNode, OperatorFuncNode and DefaultDictNode hold callables and are never
# admitted, nor is a FunctionNode unless it names one of HELD_CALLABLES; a generic ReduceNode
# would call a constructor named by the file.
_SKOPS_NODES = frozenset(
    {
        "CachedNode",
        "DictNode",
        "DTypeNode",
        "JsonNode",
        "ListNode",
        "LossNode",
        "NdArrayNode",
        "ObjectNode",
        "RandomGeneratorNode",
        "RandomStateNode",
        "SliceNode",
        "TreeNode",
        "TupleNode",
        "TypeNode",
        "BytesNode",
    }
)
_SKOPS_MAX_NODES = 1_000_000

# What a model may expand to while it is read (decompressed stream, arrays): the sandbox's memory
# limit is the hard bound; this one gives a clear error well before it.
MAX_LOADED_BYTES = 1 << 30

_PICKLE_HEADERS = (b"\x80\x03", b"\x80\x04", b"\x80\x05")
# joblib.compressor's magic numbers (gzip, bz2, xz, lzma, lz4); zlib is checked separately because
# its one-byte joblib prefix (0x78, "x") would match plain text.
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x5d\x00\x00", b"\x04\x22\x4d\x18")
_ZIP_MAGIC = b"PK\x03\x04"
_ONNX_START = b"\x08"  # protobuf field 1 (ModelProto.ir_version), varint


def detect_format(head: bytes, filename: str | None) -> str | None:
    """Guess the model format from the first bytes of a file (16 are enough) and its name.

    Returns "joblib" (pickle protocol >= 3, or a joblib-compressed file), "skops" (a zip file),
    "onnx" (by extension, and the first field every ONNX writer puts first: ir_version; the
    graph itself is parsed only in the validation sandbox), a booster's own format or
    "catboost" (shared/booster_files.py), or None. Pickle protocols 0-2 are None on purpose: they
    need globals (`copy_reg._reconstructor`) that are not allowed.
    """
    from shared.booster_files import detect_native  # that module imports this one

    if head.startswith(_PICKLE_HEADERS) or head.startswith(_COMPRESSED_MAGIC):
        return "joblib"
    if _is_zlib_header(head):
        return "joblib"
    if head.startswith(_ZIP_MAGIC):
        return "skops"
    if filename and filename.lower().endswith(".onnx") and head.startswith(_ONNX_START):
        return "onnx"
    return detect_native(head, filename)


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
        raise UnsafeModelError(
            f"model file references forbidden global {module}.{name}{advice(module)}"
        )
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
    from shared.booster_files import check_booster_state  # that module imports this one

    check_booster_state(target, stack[-1])  # a LightGBM model's text, before its parser


@functools.cache
def held_callables() -> frozenset[Any]:
    """The objects HELD_CALLABLES name (ufuncs and functions), for identity checks."""
    return frozenset(getattr(importlib.import_module(m), n) for m, n in HELD_CALLABLES)


def _check_reduce_target(stack: list[Any]) -> None:
    """Refuse REDUCE (a call) on a callable a model may only hold: a file could otherwise call
    `numpy.log1p(x, out)` or a feature score on arguments of its choosing while it loads."""
    if len(stack) < 2:
        return  # malformed; the base load_reduce raises
    target = stack[-2]
    if isinstance(target, Hashable) and target in held_callables():
        name = getattr(target, "__name__", "?")
        raise UnsafeModelError(f"model file calls {name} while loading: not allowed")


class _CappedReader(io.RawIOBase):
    """A read-only view of a stream that refuses to hand out more than `budget` bytes in all.

    The check comes before the read: a pickle's BINBYTES8 or an array header can declare any
    length, and the underlying reader would allocate all of it before finding the stream short.
    """

    def __init__(self, inner: IO[bytes], budget: int) -> None:
        self._inner = inner
        self.budget = self.remaining = budget

    def readable(self) -> bool:
        return True

    def _take(self, size: int) -> None:
        if size > self.remaining:
            raise _too_large(self.budget)
        self.remaining -= size

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        self._take(len(view))
        data = self._inner.read(len(view))
        view[: len(data)] = data
        self.remaining += len(view) - len(data)  # short read at the end: give back the rest
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self.remaining
            data = self._inner.read(size + 1)
            self._take(len(data))
            return data
        self._take(size)
        data = self._inner.read(size)
        self.remaining += size - len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        limit = self.remaining + 1 if size is None or size < 0 else min(size, self.remaining + 1)
        line = self._inner.readline(limit)
        self._take(len(line))
        return line

    def peek(self, size: int = 0) -> bytes:
        return self._inner.peek(size) if hasattr(self._inner, "peek") else b""


class _Restricted:
    """find_class and BUILD restrictions shared by the outer and the object-array unpicklers."""

    stack: list[Any]

    def find_class(self, module: str, name: str) -> Any:
        return _resolve_global(module, name)

    def load_build(self) -> None:
        _check_build_target(self.stack)
        super().load_build()  # type: ignore[misc]

    def load_reduce(self) -> None:
        _check_reduce_target(self.stack)
        super().load_reduce()  # type: ignore[misc]

    def _instantiate(self, klass: Any, args: tuple[Any, ...]) -> None:
        # The protocol 0/1 opcodes OBJ and INST call what they name too, in any stream.
        _check_reduce_target([klass, args])
        super()._instantiate(klass, args)  # type: ignore[misc]


class _SafeUnpickler(_Restricted, NumpyUnpickler):
    """joblib's unpickler restricted to ALLOWED_GLOBALS and to BUILD on plain instances."""

    # pickle dispatches opcodes through this table, not through method lookup.
    dispatch = {
        **NumpyUnpickler.dispatch,
        pickle.BUILD[0]: _Restricted.load_build,
        pickle.REDUCE[0]: _Restricted.load_reduce,
    }


class _SafeInnerUnpickler(_Restricted, pickle._Unpickler):
    """Reads the nested pickle stream of an object-dtype array with the same restrictions.

    joblib 1.6 routes only find_class of that stream through the outer unpickler, not BUILD (a
    class could be patched from inside an object array), and joblib 1.5 used a bare pickle.load.
    """

    dispatch = {
        **pickle._Unpickler.dispatch,
        pickle.BUILD[0]: _Restricted.load_build,
        pickle.REDUCE[0]: _Restricted.load_reduce,
    }


class _SafeNumpyArrayWrapper(NumpyArrayWrapper):
    """What the allowed name NumpyArrayWrapper resolves to: reads object arrays safely."""

    def read_array(self, unpickler: Any, ensure_native_byte_order: bool) -> Any:
        dtype = getattr(self, "dtype", None)
        if not isinstance(dtype, np.dtype):
            raise ModelLoadError("malformed array record in joblib file")
        if not dtype.hasobject:
            _check_array_size(self, dtype, unpickler.file_handle)
            return super().read_array(unpickler, ensure_native_byte_order)
        array = _SafeInnerUnpickler(unpickler.file_handle).load()
        if not isinstance(array, np.ndarray):
            raise ModelLoadError("malformed object array in joblib file")
        return _ensure_native_byte_order(array) if ensure_native_byte_order else array


def _check_array_size(wrapper: NumpyArrayWrapper, dtype: np.dtype, stream: Any) -> None:
    """The array's declared size must fit in what is left of the budget: joblib allocates the
    whole array before reading a byte of it."""
    shape = getattr(wrapper, "shape", None)
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ModelLoadError("malformed array record in joblib file")
    size = dtype.itemsize * int(np.prod(shape, dtype=object))
    if isinstance(stream, _CappedReader) and size > stream.remaining:
        raise _too_large(stream.budget)


def _too_large(budget: int) -> ModelLoadError:
    return ModelLoadError(f"model file expands past the loading limit ({budget >> 20} MB)")


def _check_pickle_protocol(fobj: BinaryIO) -> None:
    head = fobj.peek(2)[:2] if hasattr(fobj, "peek") else b""
    if head.startswith(_PICKLE_HEADERS):
        return
    if head[:1] == b"\x80" and len(head) == 2:
        raise ModelLoadError(
            f"pickle protocol {head[1]} is not supported: re-save with protocol 3 or later"
        )
    raise ModelLoadError("not a joblib/pickle file (protocol 3 or later)")


def load_joblib(source: Path | bytes, max_bytes: int = MAX_LOADED_BYTES) -> object:
    """Load a joblib (plain or compressed) or pickle (protocol >= 3) file restrictively, from a
    path or from the file's bytes.

    Raises UnsafeModelError for a forbidden global or a BUILD on a class, function or module;
    ModelLoadError for anything else that goes wrong, including a stream that expands past
    `max_bytes`.
    """
    try:
        with _open(source) as raw, _validate_fileobject_and_memmap(raw, "model") as (fobj, _):
            if isinstance(fobj, str):  # joblib < 0.10 "ZF" format: side files loaded via np.load
                raise ModelLoadError("joblib files older than 0.10 are not supported")
            _check_pickle_protocol(fobj)
            capped = _CappedReader(fobj, max_bytes)
            return _SafeUnpickler("model", capped, ensure_native_byte_order=True).load()
    except ModelLoadError:
        raise
    except MemoryError:
        raise ModelLoadError("model file needs more memory than the loading limit") from None
    except Exception as exc:
        raise ModelLoadError(f"cannot read joblib/pickle file: {_error_text(exc)}") from exc


def _open(source: Path | bytes) -> IO[bytes]:
    if isinstance(source, bytes):
        return io.BufferedReader(io.BytesIO(source))  # type: ignore[arg-type]
    return open(source, "rb")


def load_skops(source: Path | bytes) -> object:
    """Load a skops file whose every node is of an admitted kind and type (see _SKOPS_NODES)."""
    from zipfile import ZipFile

    from skops.io._audit import get_tree
    from skops.io._utils import read_schema

    try:
        with _open(source) as raw, ZipFile(raw) as archive:
            schema, context = read_schema(archive)
            tree = get_tree(schema, context, trusted=[])
            _check_skops_tree(tree)
            return tree.construct()
    except ModelLoadError:
        raise
    except MemoryError:
        raise ModelLoadError("model file needs more memory than the loading limit") from None
    except Exception as exc:
        raise ModelLoadError(f"cannot read skops file: {_error_text(exc)}") from exc


def _check_skops_tree(root: Any) -> None:
    """Walk every node once (the tree may share nodes) against the exact lists."""
    from skops.io._audit import Node

    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if len(seen) > _SKOPS_MAX_NODES:
            raise ModelLoadError("skops file has too many objects")
        _check_skops_node(node)
        for child in node.children.values():
            values = child.values() if isinstance(child, dict) else child
            for value in values if isinstance(child, list | dict) else [child]:
                if isinstance(value, Node):
                    stack.append(value)
                elif isinstance(value, type):
                    _check_skops_type(value.__module__, value.__name__)


def _check_skops_node(node: Any) -> None:
    kind = type(node).__name__
    if kind == "FunctionNode" and (node.module_name, node.class_name) in HELD_CALLABLES:
        return  # a reviewed function, looked up by name: skops does not call it while loading
    if kind not in _SKOPS_NODES:
        raise UnsafeModelError(
            f"skops file holds a {kind} ({node.module_name}.{node.class_name}): not allowed"
        )
    if kind != "DTypeNode":  # named after the dtype it rebuilds from an empty array
        _check_skops_type(node.module_name, node.class_name)


def _check_skops_type(module: str, name: str) -> None:
    pair = (module, name)
    if pair not in ALLOWED_GLOBALS and pair not in _SKOPS_VALUES:
        raise UnsafeModelError(f"skops file uses a type that is not allowed: {module}.{name}")


def load_model(source: Path | bytes, fmt: str) -> object:
    """Load a model file (a path or its bytes) of format `fmt` ("joblib" or "skops"; see
    detect_format), or a booster's own file: its xgboost.Booster or lightgbm.Booster."""
    from shared import booster_files  # that module imports this one

    if fmt == "joblib":
        return load_joblib(source)
    if fmt == "skops":
        return load_skops(source)
    if booster_files.library(fmt) == "xgboost":
        return booster_files.load_xgboost(source, fmt)
    if fmt == "lightgbm_txt":
        return booster_files.load_lightgbm(source)[0]
    if fmt == "onnx":
        raise ModelLoadError("ONNX models are not loaded by shared.safe_load")
    raise ModelLoadError(f"unsupported model format {fmt!r}")


def load_with_warnings(
    loader: Callable[[Any], object], source: Path | bytes
) -> tuple[object, list[str]]:
    """Call `loader(source)` and return the object with the warnings it raised, as short strings.

    scikit-learn warns (InconsistentVersionWarning) when a file was pickled by another version;
    those become one line per version pair, e.g. "pickled with scikit-learn 1.5.0, running 1.9.1
    (LogisticRegression)".
    """
    # catch_warnings is process-global: fine in prefork workers, not across threads.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # else the registry hides repeats of an earlier warning
        obj = loader(source)
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
