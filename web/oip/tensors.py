"""Open Inference Protocol v2 tensors: decoding the input matrix (JSON data, or Triton's binary
tensor extension) into rows, and encoding predictions as output tensors. One input per column
(strings, booleans, missing values) is web/oip/columns.py's."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError

from shared.errors import BadRequest
from shared.schemas.oip import InferenceRequest, RequestInput
from web.oip.columns import NUMERIC

# Triton's binary tensor data extension: the JSON header's length, the raw tensors after it.
HEADER_LENGTH = "Inference-Header-Content-Length"
# Little-endian, as the extension specifies.
_DTYPES = NUMERIC
PREDICT, PROBA = "predict", "predict_proba"


def parse_request(body: bytes, header_length: str | None) -> tuple[InferenceRequest, bytes]:
    """The request's JSON part, validated, and the binary bytes that follow it (if any)."""
    payload, split = _load_json(body, header_length)
    try:
        return InferenceRequest.model_validate(payload), body[split:]
    except ValidationError as err:
        first = err.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f"Invalid inference request: {where}: {first['msg']}") from None


def _load_json(body: bytes, header_length: str | None) -> tuple[Any, int]:
    # A body that is JSON as a whole has no binary part, whatever the header says: tritonclient
    # writes the header into the caller's headers dict, so a dict reused after a binary request
    # carries a stale length into a plain JSON one.
    try:
        return orjson.loads(body), len(body)
    except orjson.JSONDecodeError:
        if header_length is None:
            raise BadRequest("Malformed JSON body") from None
    split = _split_at(header_length, len(body))
    try:
        return orjson.loads(body[:split]), split
    except orjson.JSONDecodeError:
        raise BadRequest("Malformed JSON header of a binary request") from None


def _split_at(header_length: str, size: int) -> int:
    if not header_length.isdigit() or int(header_length) > size:
        raise BadRequest(f"{HEADER_LENGTH} must be an integer no larger than the body")
    return int(header_length)


def the_input(body: InferenceRequest) -> RequestInput:
    """A scikit-learn model takes one 2-D tensor; its name is not checked (clients differ)."""
    if len(body.inputs) != 1:
        raise BadRequest(f"Expected exactly 1 input tensor, got {len(body.inputs)}")
    return body.inputs[0]


def input_rows(tensor: RequestInput, binary: bytes, n_features: int) -> list[list[float]]:
    """The tensor as rows of floats; its shape checked against its data and the model."""
    if tensor.datatype not in _DTYPES:
        raise BadRequest(
            f"Input '{tensor.name}': a {tensor.datatype} tensor is one column of a model with "
            "named columns (one input per column), not a matrix"
        )
    rows, cols = _matrix_shape(tensor, n_features)
    size = (tensor.parameters or {}).get("binary_data_size")
    values = _json_values(tensor) if size is None else _binary_values(tensor, binary, size)
    if values.size != rows * cols:
        raise BadRequest(
            f"Input '{tensor.name}' has shape {tensor.shape} ({rows * cols} values) "
            f"but {values.size} values"
        )
    return values.astype(np.float64).reshape(rows, cols).tolist()


def _matrix_shape(tensor: RequestInput, n_features: int) -> tuple[int, int]:
    if len(tensor.shape) != 2 or tensor.shape[0] < 1:
        raise BadRequest(
            f"Input '{tensor.name}' must have shape [rows, {n_features}], got {tensor.shape}"
        )
    if tensor.shape[1] != n_features:
        raise BadRequest(
            f"Input '{tensor.name}' has {tensor.shape[1]} features per row; "
            f"the model expects {n_features}"
        )
    return tensor.shape[0], tensor.shape[1]


def _binary_values(tensor: RequestInput, binary: bytes, size: Any) -> np.ndarray:
    if not isinstance(size, int) or size != len(binary):
        raise BadRequest(
            f"Input '{tensor.name}': binary_data_size {size} does not match the "
            f"{len(binary)} bytes after the JSON header"
        )
    dtype = np.dtype(_DTYPES[tensor.datatype])
    if size % dtype.itemsize:
        raise BadRequest(f"Input '{tensor.name}': {size} bytes is not a whole number of values")
    return np.frombuffer(binary, dtype=dtype)


def _json_values(tensor: RequestInput) -> np.ndarray:
    if tensor.data is None:
        raise BadRequest(f"Input '{tensor.name}' has no data")
    flat = _flatten(tensor.data)
    integer = tensor.datatype.startswith(("INT", "UINT"))
    for value in flat:
        # bool is an int subclass in Python; true/false is not a number here.
        if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
            raise BadRequest(f"Input '{tensor.name}': {value!r} is not a {tensor.datatype} value")
    dtype = np.dtype(_DTYPES[tensor.datatype])
    try:
        values = np.array(flat, dtype=np.int64 if integer else np.float64)
    except OverflowError:
        values = None
    if values is None or (integer and values.size and not _fits(values, dtype)):
        raise BadRequest(f"Input '{tensor.name}': a value overflows {tensor.datatype}")
    with np.errstate(over="ignore"):  # FP32 overflow becomes inf, which is refused later
        return values.astype(dtype)


def _fits(values: np.ndarray, dtype: np.dtype) -> bool:
    bounds = np.iinfo(dtype)
    return bool(values.min() >= bounds.min and values.max() <= bounds.max)


def _flatten(data: list[Any]) -> list[Any]:
    """Row-major values of flat or nested lists (iterative: nesting depth costs no stack)."""
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def output_names(body: InferenceRequest, has_proba: bool) -> list[str]:
    """Requested outputs in order; by default `predict`, plus `predict_proba` when available."""
    available = [PREDICT, PROBA] if has_proba else [PREDICT]
    if not body.outputs:
        return available
    names = list(dict.fromkeys(o.name for o in body.outputs))
    unknown = [n for n in names if n not in available]
    if unknown:
        raise BadRequest(f"Unknown output {unknown[0]!r}; this model has {available}")
    return names


def label_datatype(labels: list[Any]) -> str:
    """OIP datatype of a list of labels: strings → BYTES, ints → INT64, else FP64."""
    if labels and all(isinstance(v, str) for v in labels):
        return "BYTES"
    if labels and all(isinstance(v, bool) for v in labels):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        return "INT64"
    return "FP64"


def output_tensors(result: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    """Output tensors (JSON data, row-major) from a finished job's result."""
    predictions = result["predictions"]
    tensors = []
    for name in names:
        if name == PREDICT:
            datatype = label_datatype(predictions)
            shape = [len(predictions)]
            data = predictions
        else:
            proba = result.get("probabilities") or []
            datatype = "FP64"
            shape = [len(proba), len(proba[0]) if proba else 0]
            data = [p for row in proba for p in row]
        tensors.append({"name": name, "datatype": datatype, "shape": shape, "data": data})
    return tensors
