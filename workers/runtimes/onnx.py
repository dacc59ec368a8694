"""ONNX Runtime behind the same interface as SklearnRuntime (workers/runtimes/base.py).

One InferenceSession per model per process, single-threaded: a worker runs several processes,
and threads inside each would only fight over the same cores.

A graph takes either one [batch, n_features] float/double matrix, or one [batch, 1] tensor per
column (shared/onnx_graph.column_inputs: what workers/validation/compile.py emits for models with
typed or named columns); this runtime feeds the rows it gets -- a float64 matrix or the typed
frame (shared/jobs/inputs.py) -- in the shape the graph takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from shared import onnx_graph
from workers.runtimes.base import Rows

# Written by workers/validation/compile.py for models whose scikit-learn trees compare float32
# inputs.
ROUNDING_PROP = "mlsp.input_rounding"
# A missing value in a column of one input per column. A string tensor cannot hold NaN: a missing
# string is fed as skl2onnx's encoders spell the NaN category they saw (str(nan)), and the text
# "nan" itself as a value no encoder has seen, as scikit-learn reads them. An int64 tensor has
# no missing value either: a missing integer or boolean is fed as the one int64 a request cannot
# hold (shared/jobs/checks.py refuses integers beyond +-(2**63 - 1)), an unseen category.
# Validation compares both runtimes on rows with missing values, unseen values and the text
# "nan" (workers/validation/equivalence.py): a graph that reads any of them otherwise than
# scikit-learn does is not used.
MISSING_STRING = "nan"
LITERAL_NAN = "\x00nan"
MISSING_INTEGER = int(np.iinfo(np.int64).min)


def session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


class OnnxRuntime:
    """An ONNX model: feeds rows as one 2-D tensor, returns the model's own labels."""

    name = "onnx"

    def __init__(self, session: ort.InferenceSession, meta: onnx.ModelProto) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_names = [o.name for o in session.get_outputs()]
        # (name, numpy dtype) per column for a graph of one input per column, else None and
        # the matrix's width and dtype.
        self.columns = onnx_graph.column_inputs(meta)
        self.dtype: str | None = None
        if self.columns is None:
            self.n_features, self.dtype = onnx_graph.input_spec(meta)
        else:
            self.n_features = len(self.columns)
        self.schema = onnx_graph.output_schema(meta)
        props = {p.key: p.value for p in meta.metadata_props}
        self.round_float32 = props.get(ROUNDING_PROP) == "float32"
        self.classes = self.schema["classes"]
        self._lookup = {_label_key(c): c for c in self.classes or []}

    @classmethod
    def from_bytes(cls, data: bytes) -> OnnxRuntime:
        """Check the graph (standard operators, no external data), then open a session on the
        bytes themselves: with no file path, the runtime has no directory to read from."""
        meta = onnx_graph.parse(data)
        onnx_graph.check(meta)
        session = ort.InferenceSession(data, session_options(), providers=["CPUExecutionProvider"])
        return cls(session, meta)

    @classmethod
    def load(cls, path: Path) -> OnnxRuntime:
        return cls.from_bytes(Path(path).read_bytes())

    def _feed(self, rows: Rows) -> dict[str, np.ndarray]:
        if self.columns is not None:
            return self._column_feed(rows)
        array = np.asarray(rows, dtype=np.float64)
        if self.round_float32:
            # scikit-learn trees compare float32(x) with double thresholds: do the same.
            array = array.astype(np.float32).astype(np.float64)
        return {self.input_name: array.astype(self.dtype, copy=False)}

    def _column_feed(self, rows: Rows) -> dict[str, np.ndarray]:
        """One [rows, 1] array per graph input, from the typed frame's columns or a matrix's, in
        feature order (the graph's inputs are the model's columns, in its order)."""
        if isinstance(rows, np.ndarray | list):
            strings = [name for name, dtype in self.columns if dtype == "str"]
            if strings:
                raise ValueError(f"column {strings[0]!r} takes strings, and the rows are numbers")
            matrix = np.asarray(rows, dtype=np.float64)
            values = [matrix[:, i] for i in range(matrix.shape[1])] if matrix.ndim == 2 else []
        else:  # a DataFrame of typed columns
            values = _frame_columns(rows)
        if len(values) != len(self.columns):
            raise ValueError(f"expected {len(self.columns)} columns, got {len(values)}")
        return {
            name: self._column(name, dtype, column).reshape(-1, 1)
            for (name, dtype), column in zip(self.columns, values, strict=True)
        }

    def _column(self, name: str, dtype: str, values: Any) -> np.ndarray:
        if dtype == "str":
            return _strings(values)
        if dtype == "int64":
            return _integers(name, values)
        array = np.asarray(values, dtype=np.float64)  # None (a missing boolean) becomes NaN
        if self.round_float32:
            array = array.astype(np.float32).astype(np.float64)
        return np.ascontiguousarray(array, dtype=dtype)  # a matrix's column is strided

    def _run(self, rows: Rows, output: int) -> Any:
        return self.session.run([self.output_names[output]], self._feed(rows))[0]

    def predict(self, rows: Rows) -> list[Any]:
        """Labels (mapped to the model's classes, so types match scikit-learn) or values."""
        out = np.asarray(self._run(rows, 0))
        if out.ndim == 2 and out.shape[1] == 1:
            out = out.ravel()
        values = out.tolist()
        if not self._lookup:
            return values
        return [self._lookup.get(_label_key(v), v) for v in values]

    def predict_proba(self, rows: Rows) -> tuple[list[list[float]], list[Any]]:
        if len(self.output_names) < 2:
            raise ValueError("this ONNX model has no probability output")
        out = self._run(rows, 1)
        if isinstance(out, list):  # ZipMap: one {label: probability} per row
            classes = list(out[0].keys()) if out else list(self.classes or [])
            return [[float(row[c]) for c in classes] for row in out], classes
        probabilities = np.asarray(out, dtype=np.float64)
        classes = self.classes or list(range(probabilities.shape[1]))
        return probabilities.tolist(), list(classes)


def _frame_columns(frame: Any) -> list[Any]:
    """Each column's values (a NumPy or pandas extension array), in order. pandas builds a
    Series per `frame.iloc[:, i]`, ~50 us each, most of a one-row predict on a few columns; its
    own column accessor returns the array in ~1 us (kept behind a check: it is not public)."""
    column_array = getattr(frame, "_get_column_array", None)
    if column_array is None:
        return [frame.iloc[:, i].array for i in range(frame.shape[1])]
    return [column_array(i) for i in range(frame.shape[1])]


def _strings(values: Any) -> np.ndarray:
    """A string column (str values, NaN or None where missing) as the object array of str ONNX
    Runtime takes."""
    import pandas as pd  # loaded already: the rows came as a DataFrame

    array = np.array(values, dtype=object)  # a copy: the frame's own array stays as it is
    missing = pd.isna(array)
    array[array == MISSING_STRING] = LITERAL_NAN
    array[missing] = MISSING_STRING
    return array


def _integers(name: str, values: Any) -> np.ndarray:
    """An integer (or boolean) column as int64; a fraction would be truncated into another
    category: it is refused, not guessed."""
    array = np.asarray(values)
    if array.dtype.kind in "iub":
        return array.astype(np.int64, copy=False)
    array = array.astype(np.float64)  # float: a missing value among integers; object: None
    missing = np.isnan(array)
    if not np.array_equal(array[~missing], np.trunc(array[~missing])):
        raise ValueError(f"column {name!r}: the graph's int64 input takes whole numbers")
    return np.where(missing, MISSING_INTEGER, array).astype(np.int64)


def _label_key(value: Any) -> Any:
    # ONNX returns int64 for integer classes and may for floats or bools: compare as numbers.
    return value if isinstance(value, str) else float(value)
