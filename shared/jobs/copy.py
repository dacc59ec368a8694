"""Job rows written by binary `COPY` instead of an INSERT statement, for rows that carry a big
input matrix; and big matrices read back the same way.

psycopg2 sends every parameter as text inside the statement, so a matrix's bytes travel as a
hex literal twice their size, and PostgreSQL's scanner reads that literal at ~8 ns a character:
a 10,000-row, 20-column matrix (1.6 MB) took 27-37 ms to INSERT, of which ~25 ms is the literal
alone (a `SELECT length(%s)` of the same bytes). `COPY ... (FORMAT binary)` sends the bytes as
they are: the same row goes in in 10-16 ms, WAL flush included. COPY has no ON CONFLICT and no
RETURNING: it suits a row whose id is new (a unique violation raises, as the INSERT's would).

Read back, a bytea column comes as hex text too (psycopg2 has no binary results): the worker's
claim of a 10,000 x 20 matrix took 9.8 ms that way, by `COPY ... TO STDOUT (FORMAT binary)` 3.1.
"""

from __future__ import annotations

import io
import struct
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Boolean, Connection, DateTime, Float, Integer, LargeBinary, String
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.exc import DBAPIError

from shared.jobs.table import Job

# A matrix at least this big goes in by COPY. Measured for one queued row with its commit, INSERT
# against COPY: 400 x 20 values (62 KB) 1.96 / 1.01 ms, 1,600 x 20 6.6 / 2.9 ms, 10,000 x 20
# 27-37 / 10-16 ms. Smaller rows keep the INSERT: a single row measured within the noise of it
# (0.87 / 0.74 ms), and an inline job's finished row goes in with its batch's one statement,
# where a COPY would be a statement and a commit of its own.
COPY_MIN_BYTES = 64 * 1024

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)
_NULL = struct.pack("!i", -1)
_EPOCH_2000 = datetime(2000, 1, 1, tzinfo=UTC)
_JSONB_VERSION = b"\x01"


def _timestamp(value: datetime | str) -> bytes:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    delta = value - _EPOCH_2000
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return struct.pack("!q", micros)


def _uuid(value: uuid.UUID | str) -> bytes:
    return (value if isinstance(value, uuid.UUID) else uuid.UUID(value)).bytes


def _jsonb(value: Any) -> bytes:
    return _JSONB_VERSION + orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


# PostgreSQL's binary send format of each column type the jobs table uses. Checked before
# Integer: Boolean is no Integer subclass, but the order documents which wins for a subclass.
_ENCODERS: tuple[tuple[type, Callable[[Any], bytes]], ...] = (
    (UUID, _uuid),
    (Boolean, lambda v: b"\x01" if v else b"\x00"),
    (Integer, lambda v: struct.pack("!i", v)),
    (Float, lambda v: struct.pack("!d", v)),
    (DateTime, _timestamp),
    (JSONB, _jsonb),
    (LargeBinary, bytes),
    (String, lambda v: v.encode()),  # Text is a String
)


def _encoder(column: str) -> Callable[[Any], bytes]:
    kind = Job.__table__.c[column].type
    for base, encode in _ENCODERS:
        if isinstance(kind, base):
            return encode
    raise TypeError(f"no binary COPY encoding for jobs.{column} ({kind})")


def payload(columns: tuple[str, ...], rows: Iterable[Mapping[str, Any]]) -> bytes:
    """The rows in COPY's binary format (header, one tuple per row, trailer)."""
    encoders = [_encoder(name) for name in columns]
    out = [_SIGNATURE]
    count = struct.pack("!h", len(columns))
    for row in rows:
        out.append(count)
        for name, encode in zip(columns, encoders, strict=True):
            value = row[name]
            if value is None:
                out.append(_NULL)
                continue
            data = encode(value)
            out += (struct.pack("!i", len(data)), data)
    out.append(_TRAILER)
    return b"".join(out)


def statement(columns: tuple[str, ...]) -> str:
    return f"COPY jobs ({', '.join(columns)}) FROM STDIN WITH (FORMAT binary)"


def copy_rows(cursor: Any, columns: tuple[str, ...], rows: Iterable[Mapping[str, Any]]) -> None:
    """COPY the rows into `jobs` on a DB-API (psycopg2) cursor; the caller commits."""
    cursor.copy_expert(statement(columns), io.BytesIO(payload(columns, rows)))


def insert(conn: Connection, columns: tuple[str, ...], rows: Iterable[Mapping[str, Any]]) -> None:
    """`copy_rows` on a SQLAlchemy connection (in autocommit: the COPY commits by itself). A
    driver error is raised as SQLAlchemy raises an INSERT's (IntegrityError for a unique key,
    OperationalError for a lost connection, which is then invalidated), so callers and the
    error handlers treat both writes alike."""
    dbapi = conn.dialect.loaded_dbapi
    raw = conn.connection
    cursor = raw.cursor()
    try:
        copy_rows(cursor, columns, rows)
    except dbapi.Error as exc:
        lost = conn.dialect.is_disconnect(exc, raw, cursor)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            statement(columns), None, exc, dbapi.Error, connection_invalidated=lost
        ) from exc
    finally:
        if not cursor.closed:
            cursor.close()


def is_big(row: Mapping[str, Any]) -> bool:
    """Whether a row's input matrix is worth a COPY of its own."""
    matrix = row.get("input_matrix")
    return matrix is not None and len(matrix) >= COPY_MIN_BYTES


def matrices_statement(job_ids: Iterable[uuid.UUID]) -> str:
    """The COPY that writes these jobs' ids and input matrices in binary (ids are UUID objects:
    their text is hex digits and dashes, safe inside the literal)."""
    ids = ",".join(str(uuid.UUID(str(job_id))) for job_id in job_ids)
    return (
        f"COPY (SELECT id, input_matrix FROM jobs WHERE id = ANY('{{{ids}}}'::uuid[])) "  # noqa: S608 - UUIDs
        "TO STDOUT WITH (FORMAT binary)"
    )


def matrices(data: bytes) -> dict[uuid.UUID, bytes]:
    """What `matrices_statement` wrote: each job's matrix by job id."""
    return {uuid.UUID(bytes=job_id): matrix for job_id, matrix in _tuples(memoryview(data))}


def _tuples(data: memoryview) -> Iterator[list[bytes | None]]:
    """The tuples of COPY's binary format (a header, tuples of length-prefixed fields, a -1)."""
    if bytes(data[: len(_SIGNATURE) - 8]) != _SIGNATURE[:-8]:
        raise ValueError("not COPY's binary format")
    (extension,) = struct.unpack_from("!i", data, len(_SIGNATURE) - 4)
    at = len(_SIGNATURE) + extension
    while True:
        (count,) = struct.unpack_from("!h", data, at)
        at += 2
        if count == -1:
            return
        fields: list[bytes | None] = []
        for _ in range(count):
            (size,) = struct.unpack_from("!i", data, at)
            at += 4
            fields.append(None if size == -1 else bytes(data[at : at + size]))
            at += max(size, 0)
        yield fields
