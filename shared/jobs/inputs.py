"""Job input rows in transit and at rest (BYTEA `input_matrix`), in one of two binary forms:

- a float64 matrix in NumPy's `.npy` format, for models whose columns are all numbers (NaN where
  a nullable column was missing). JSONB was the first home of job inputs, and for a 100,000-row
  job it was most of the job's time: PostgreSQL parses ~21 MB of JSON numbers on insert (2.5 s
  here) and prints them again for the worker (0.7 s). The same matrix as bytes goes in in 0.3 s
  and out in 0.1 s, exact to the bit. `.npy` carries its own dtype and shape, and is read back
  with pickles refused.
- an Arrow IPC stream of one typed column per feature, for models that take strings, integers or
  booleans: it holds strings, nulls and numbers, and `to_pandas` gives the worker exactly the
  frame `pandas.DataFrame(rows, columns=feature_names)` would (docs/design.md, "Typed inputs").

`encode` picks the form from the rows' type, `decode` from the bytes' magic.
"""

from __future__ import annotations

import base64
import functools
import io
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pyarrow and pandas load only where typed rows are met
    import pandas as pd
    import pyarrow as pa

# Rows as the web tier checked them: a float64 matrix, or a table of typed columns.
Rows = Any

_FLOAT64 = np.lib.format.dtype_to_descr(np.dtype(np.float64))
_NPY_MAGIC = b"\x93NUMPY"

# The Arrow type each column dtype of an input schema travels as.
ARROW_TYPES = {"number": "float64", "integer": "int64", "string": "string", "boolean": "bool"}


def use_system_allocator() -> None:
    """Allocate Arrow buffers with malloc. pyarrow's default allocator (mimalloc) reserves about
    1 GiB of address space on its first allocation -- which pandas makes for any string column --
    and a process under an address-space cap (RLIMIT_AS: the validation sandbox, worker children)
    counts reservations as use. Call before the cap, and before Arrow allocates anything."""
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


def is_typed(columns: list[dict[str, Any]] | None) -> bool:
    """Whether a model's rows travel as typed columns (any column that is not a number)."""
    return bool(columns) and any(column["dtype"] != "number" for column in columns or ())


def encode(rows: Any) -> bytes:
    """The bytes stored and queued for the rows: `.npy` for a matrix, Arrow IPC for a table."""
    if isinstance(rows, np.ndarray):
        return to_npy(rows)
    return _ipc(rows)


def decode(data: bytes | memoryview) -> np.ndarray | pd.DataFrame:
    """The rows a runtime predicts on: the float64 matrix, or the typed table as a DataFrame."""
    if bytes(data[: len(_NPY_MAGIC)]) == _NPY_MAGIC:
        return from_npy(data)
    return to_frame(from_ipc(data))


def to_npy(rows: np.ndarray) -> bytes:
    """The bytes `np.save` writes, built from a header cached per shape: every job, sync or not,
    stores its rows, and `np.save` spends ~20 µs formatting the header of a one-row matrix."""
    matrix = np.ascontiguousarray(rows, dtype=np.float64)
    return _header(matrix.shape) + matrix.tobytes()


@functools.lru_cache(maxsize=256)
def _header(shape: tuple[int, ...]) -> bytes:
    out = io.BytesIO()
    header = {"descr": _FLOAT64, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue()


def from_npy(data: bytes | memoryview) -> np.ndarray:
    matrix = np.load(io.BytesIO(data), allow_pickle=False)
    if matrix.dtype != np.float64 or matrix.ndim != 2:
        raise ValueError(f"stored inputs are {matrix.dtype} with {matrix.ndim} dimensions")
    return matrix


def table(values: list[list[Any]], columns: list[dict[str, Any]]) -> pa.Table:
    """Typed columns from rows already checked against `columns` (values in feature order,
    None for a missing value)."""
    import pyarrow as pa

    arrays = [
        pa.array([row[i] for row in values], type=ARROW_TYPES[column["dtype"]])
        for i, column in enumerate(columns)
    ]
    return pa.Table.from_arrays(arrays, names=[column["name"] for column in columns])


def _ipc(rows: pa.Table) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes | memoryview) -> pa.Table:
    import pyarrow as pa

    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def to_frame(rows: pa.Table) -> pd.DataFrame:
    """The frame pandas builds from the same rows: a string column is pandas' string dtype with
    NaN for a missing value, an integer column with a missing value is float64, a boolean one
    holds None (as `pandas.DataFrame(rows)` gives them)."""
    return rows.to_pandas()


def has_missing(rows: Any) -> bool:
    """A NaN in a matrix, a null in a typed frame (the forms a runtime receives)."""
    if isinstance(rows, np.ndarray):
        return bool(np.isnan(rows).any())
    return bool(rows.isna().any(axis=None))


# A matrix of at least this many values travels in a queue entry as its `.npy` bytes (base64)
# rather than as JSON lists: for 10,000 rows x 20 columns, 1.3 ms to encode and ~1 ms to read
# back, against 5 ms for orjson to write the lists and ~15 ms to parse them into a matrix again.
# A small one stays JSON, cheaper both ways for a single row (np.load parses a header).
BINARY_TEXT_MIN_VALUES = 4096


def to_text(rows: Any) -> Any:
    """Rows inside a JSON queue entry: a small matrix as it is (orjson writes it), a big one as
    its `.npy` bytes and a table as its IPC bytes, both in base64."""
    if isinstance(rows, np.ndarray) and rows.size < BINARY_TEXT_MIN_VALUES:
        return rows
    return base64.b64encode(encode(rows)).decode()


def text_bytes(value: Any, rows: Any) -> bytes:
    """The stored bytes of rows that came in a queue entry: `value` is `to_text`'s output as
    parsed, `rows` what `from_text` made of it (neither form is decoded twice)."""
    if isinstance(rows, np.ndarray):
        return to_npy(rows)
    return base64.b64decode(value)


def from_text(value: Any) -> np.ndarray | pd.DataFrame:
    """What `to_text` wrote, read back (the bytes' magic tells `.npy` from IPC): a missing value
    of a small matrix came back as null."""
    if isinstance(value, str):
        return decode(base64.b64decode(value))
    return np.asarray(value, dtype=np.float64)
