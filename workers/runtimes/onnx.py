"""ONNX Runtime behind the same interface as SklearnRuntime (workers/runtimes/base.py).

One InferenceSession per model per process, single-threaded: a worker runs several processes,
and threads inside each would only fight over the same cores.
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
        self.n_features, self.dtype = onnx_graph.input_spec(meta)
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
        array = np.asarray(rows, dtype=np.float64)
        if self.round_float32:
            # scikit-learn trees compare float32(x) with double thresholds: do the same.
            array = array.astype(np.float32).astype(np.float64)
        return {self.input_name: array.astype(self.dtype, copy=False)}

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


def _label_key(value: Any) -> Any:
    # ONNX returns int64 for integer classes and may for floats or bools: compare as numbers.
    return value if isinstance(value, str) else float(value)
