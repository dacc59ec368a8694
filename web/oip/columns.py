"""One OIP input per column, as MLServer's pandas codec reads a request (`content_type: "pd"`):
each input is named after one of the model's columns and holds that column's values for every
row. The values become rows in feature order, for the same checks as `/predict` (a 422 there
names the row and column); this module only decodes what each datatype can carry.

- `BYTES`: JSON strings, or Triton's binary form (per element, a 4-byte little-endian length,
  then the bytes), decoded as UTF-8.
- `BOOL`: JSON true/false, or one byte per value.
- `INT*`, `UINT*`, `FP*`: JSON numbers, or little-endian binary; a binary NaN is a missing value
  (the only one a binary float tensor can carry).
- JSON `null` is a missing value in any datatype. An input with `parameters.content_type:
  "pd_json"` holds each value as JSON text, which is how MLServer's pandas codec encodes a column
  that it cannot send as plain strings (one with a missing value, say: `["\"Oslo\"", "null"]`).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from shared.errors import BadRequest
from shared.schemas.oip import InferenceRequest, RequestInput

# Numeric datatypes as little-endian numpy dtypes (the binary extension's byte order).
NUMERIC = {
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
PANDAS = "pd"  # MLServer's request content type for one input per column
_JSON_TEXT = "pd_json"  # MLServer's input content type: each value is JSON text
_LENGTH = struct.Struct("<I")


def per_column(body: InferenceRequest, columns: list[dict[str, Any]] | None) -> bool:
    """Whether the request sends one input per column: the model has columns and the request
    has several inputs, says `content_type: "pd"`, or names its one input after a column. A
    single matrix (the common numeric request) is told apart first, by its shape alone."""
    if not columns:
        return False
    if len(body.inputs) > 1:
        return True
    tensor = body.inputs[0]
    if body.parameters and body.parameters.get("content_type") == PANDAS:
        return True
    if len(tensor.shape) == 2 and tensor.shape[1] != 1:
        return False  # [rows, n_features]: a column is [rows] or [rows, 1]
    return any(column["name"] == tensor.name for column in columns)


def column_rows(
    inputs: Sequence[RequestInput], binary: bytes, columns: list[dict[str, Any]]
) -> list[list[Any]]:
    """The inputs' values as rows in the columns' order (400 for an unknown, repeated or missing
    column, a shape that is not one column, or values a datatype cannot hold)."""
    names = [column["name"] for column in columns]
    _check_names(inputs, names)
    values: dict[str, list[Any]] = {}
    offset = 0
    for tensor in inputs:  # binary tensors follow the JSON header in the inputs' order
        rows = _rows_of(tensor)
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            decoded = _json_column(tensor)
        else:
            raw = _slice(tensor, binary, offset, size)
            offset += size
            decoded = _binary_column(tensor, raw)
        if len(decoded) != rows:
            raise BadRequest(
                f"Input '{tensor.name}' has shape {tensor.shape} ({rows} values) "
                f"but {len(decoded)} values"
            )
        values[tensor.name] = decoded
    if offset != len(binary):
        raise BadRequest(
            f"The inputs' binary_data_size add up to {offset} bytes, but {len(binary)} "
            "bytes follow the JSON header"
        )
    counts = {len(v) for v in values.values()}
    if len(counts) > 1:
        sizes = ", ".join(f"'{n}': {len(values[n])}" for n in names)
        raise BadRequest(f"Every input needs the same number of rows; got {sizes}")
    return [list(row) for row in zip(*(values[n] for n in names), strict=True)]


def _check_names(inputs: Sequence[RequestInput], names: list[str]) -> None:
    known = set(names)
    seen: set[str] = set()
    for tensor in inputs:
        if tensor.name not in known:
            raise BadRequest(
                f"Unknown input {tensor.name!r}: this model's columns are {_listed(names)}"
            )
        if tensor.name in seen:
            raise BadRequest(f"Input {tensor.name!r} is given twice")
        seen.add(tensor.name)
    if missing := [n for n in names if n not in seen]:
        raise BadRequest(f"Missing input for column {_listed(missing)}: one input per column")


def _listed(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:20])
    return shown + (f" (and {len(names) - 20} more)" if len(names) > 20 else "")


def _rows_of(tensor: RequestInput) -> int:
    shape = tensor.shape
    if len(shape) not in (1, 2) or shape[0] < 1 or (len(shape) == 2 and shape[1] != 1):
        raise BadRequest(
            f"Input '{tensor.name}' is one column: shape [rows] or [rows, 1], got {shape}"
        )
    return shape[0]


def _slice(tensor: RequestInput, binary: bytes, offset: int, size: Any) -> bytes:
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadRequest(f"Input '{tensor.name}': binary_data_size must be a byte count")
    if offset + size > len(binary):
        raise BadRequest(
            f"Input '{tensor.name}': binary_data_size {size} goes past the "
            f"{len(binary)} bytes after the JSON header"
        )
    return binary[offset : offset + size]


def _json_column(tensor: RequestInput) -> list[Any]:
    if tensor.data is None:
        raise BadRequest(f"Input '{tensor.name}' has no data")
    flat = _flat(tensor.data)
    if _is_json_text(tensor):
        return [_from_json_text(tensor, value) for value in flat]
    if tensor.datatype == "BYTES":
        return [_checked(tensor, v, isinstance(v, str)) for v in flat]
    if tensor.datatype == "BOOL":
        return [_checked(tensor, v, isinstance(v, bool)) for v in flat]
    return _json_numbers(tensor, flat)


def _flat(data: list[Any]) -> list[Any]:
    """[v, ...] or [[v], ...] (shape [rows, 1]) as a flat list."""
    return [item[0] if isinstance(item, list) and len(item) == 1 else item for item in data]


def _is_json_text(tensor: RequestInput) -> bool:
    return (tensor.parameters or {}).get("content_type") == _JSON_TEXT


def _checked(tensor: RequestInput, value: Any, ok: bool) -> Any:
    if value is not None and not ok:
        raise BadRequest(f"Input '{tensor.name}': {value!r:.80} is not a {tensor.datatype} value")
    return value


def _from_json_text(tensor: RequestInput, text: Any) -> Any:
    """A `pd_json` value: JSON text holding one scalar (a string, number, boolean or null)."""
    if not isinstance(text, str | bytes):
        raise BadRequest(f"Input '{tensor.name}': pd_json values must be JSON text")
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise BadRequest(f"Input '{tensor.name}': {text!r:.80} is not JSON text") from None
    if isinstance(value, list | dict):
        raise BadRequest(f"Input '{tensor.name}': {text!r:.80} is not one value")
    return value


def _json_numbers(tensor: RequestInput, flat: list[Any]) -> list[Any]:
    """Numbers of the tensor's datatype (an FP32 value rounded to float32, as the matrix path
    does), nulls kept."""
    dtype = np.dtype(NUMERIC[tensor.datatype])
    integer = dtype.kind in "iu"
    for value in flat:
        number = isinstance(value, int if integer else int | float)
        _checked(tensor, value, number and not isinstance(value, bool))
    present = [v for v in flat if v is not None]
    if integer:
        bounds = np.iinfo(dtype)
        if any(v < bounds.min or v > bounds.max for v in present):
            raise BadRequest(f"Input '{tensor.name}': a value overflows {tensor.datatype}")
        return flat
    try:
        array = np.array(present, dtype=np.float64)
    except OverflowError:  # JSON integers have no size limit
        raise BadRequest(f"Input '{tensor.name}': a value overflows {tensor.datatype}") from None
    with np.errstate(over="ignore"):  # beyond FP32 becomes inf, which the checks refuse
        numbers = iter(array.astype(dtype).astype(np.float64).tolist())
    return [None if v is None else next(numbers) for v in flat]


def _binary_column(tensor: RequestInput, raw: bytes) -> list[Any]:
    if tensor.datatype == "BYTES":
        items = _byte_strings(tensor, raw)
        if _is_json_text(tensor):
            return [_from_json_text(tensor, item) for item in items]
        return [_utf8(tensor, item) for item in items]
    if tensor.datatype == "BOOL":
        return (np.frombuffer(raw, dtype=np.uint8) != 0).tolist()
    dtype = np.dtype(NUMERIC[tensor.datatype])
    if len(raw) % dtype.itemsize:
        raise BadRequest(f"Input '{tensor.name}': {len(raw)} bytes is not a whole number of values")
    values = np.frombuffer(raw, dtype=dtype).astype(np.float64 if dtype.kind == "f" else dtype)
    if dtype.kind != "f":
        return values.tolist()
    return [None if math.isnan(v) else v for v in values.tolist()]


def _byte_strings(tensor: RequestInput, raw: bytes) -> list[bytes]:
    """Triton's serialized BYTES tensor: each element's 4-byte little-endian length, then it."""
    items, offset = [], 0
    while offset < len(raw):
        if offset + _LENGTH.size > len(raw):
            raise BadRequest(f"Input '{tensor.name}': truncated BYTES element length")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + length > len(raw):
            raise BadRequest(f"Input '{tensor.name}': a BYTES element runs past its data")
        items.append(raw[offset : offset + length])
        offset += length
    return items


def _utf8(tensor: RequestInput, item: bytes) -> str:
    try:
        return item.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"Input '{tensor.name}': a BYTES value is not UTF-8 text") from None
