"""A batch's files, read and written in bounded pieces (never a whole file in memory):

- the input as uploaded (`<id>.input.csv|parquet`): its header checked at upload;
- the rows file (`<id>.rows.parquet`): the input rewritten by planning into row groups of
  BATCH_CHUNK_ROWS rows, one per chunk; a CSV's cells stay text (a bad cell must fail its row,
  not the read), a Parquet file's columns keep their types;
- the parts (`<id>.p<chunk>a<attempt>.parquet`): each chunk's output rows;
- the result (`<id>.result.csv|parquet`): the parts joined in order.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from shared.store import ArtifactStore, Stored

if TYPE_CHECKING:
    import pyarrow as pa

PARQUET_MAGIC = b"PAR1"
# Bytes pyarrow's CSV reader parses at a time (a row may not be longer). Its streaming reader
# reads up to 32 blocks ahead of the parsing, so a read holds ~40x this whatever the file size:
# 8 MB blocks held ~320 MB of a 2,000,000-row file, 2 MB blocks ~86 MB of any size.
CSV_BLOCK_BYTES = 2 << 20


class BadFile(ValueError):
    """The file cannot be read as the format it claims (or as any we take)."""


def detect_format(head: bytes) -> str:
    """ "parquet" for Parquet's magic, else "csv" (a text header is checked afterwards)."""
    return "parquet" if head[:4] == PARQUET_MAGIC else "csv"


def header(path: Path, fmt: str) -> list[str]:
    """The file's column names, read without loading it."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as exc:
            raise BadFile(f"not a readable Parquet file: {exc}") from exc
    with open(path, "rb") as raw:
        first = raw.readline(1 << 20)
    try:
        line = codecs.decode(first, "utf-8-sig")
    except UnicodeDecodeError:
        raise BadFile("a CSV file must be UTF-8 text with a header row") from None
    names = next(csv.reader(io.StringIO(line)), [])
    if not names or any(not name.strip() for name in names):
        raise BadFile("a CSV file needs a header row naming every column")
    if len(set(names)) != len(names):
        raise BadFile("the header row names a column twice")
    return names


def write_rows_file(source: Path, fmt: str, target: Path, chunk_rows: int) -> list[int]:
    """Rewrite the input as Parquet with row groups of `chunk_rows` rows (the last may be
    shorter); returns the row count of each group."""
    import pyarrow.parquet as pq

    counts: list[int] = []
    writer: pq.ParquetWriter | None = None
    try:
        for table in _regrouped(_read_batches(source, fmt), chunk_rows):
            if writer is None:
                # A scratch file read back once per chunk on the same disk: encoding its text
                # cells (dictionaries that fail on numbers' text, snappy) took ~half of
                # planning, and planning runs before any chunk can start.
                writer = pq.ParquetWriter(
                    target, table.schema, use_dictionary=False, compression="none"
                )
            writer.write_table(table, row_group_size=chunk_rows)
            counts.append(table.num_rows)
    except BadFile:
        raise
    except Exception as exc:  # pyarrow's parse errors name the line and the problem
        raise BadFile(str(exc).splitlines()[0][:300]) from exc
    finally:
        if writer is not None:
            writer.close()
    return counts


def _read_batches(source: Path, fmt: str) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    if fmt == "parquet":
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(source).iter_batches(batch_size=64_000)
        return
    import pyarrow.csv as pacsv

    names = header(source, "csv")
    reader = pacsv.open_csv(
        source,
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,  # an empty cell stays "": cells.py reads it as missing
        ),
    )
    yield from reader


def _regrouped(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Tables of exactly `rows` rows (the last may be shorter) from batches of any size."""
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows).combine_chunks()
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending).combine_chunks()


def read_chunk(rows_file: Path, index: int) -> pa.Table:
    import pyarrow.parquet as pq

    return pq.ParquetFile(rows_file).read_row_group(index)


def write_part(table: pa.Table, store: ArtifactStore, key: str) -> Stored:
    import pyarrow.parquet as pq

    with scratch(store) as path:
        pq.write_table(table, path)
        with open(path, "rb") as stream:
            return store.save(key, stream)


def write_result(parts: list[Path], fmt: str, store: ArtifactStore, key: str) -> Stored:
    """The parts, in order, as one CSV or Parquet file: one part in memory at a time."""
    import pyarrow.parquet as pq

    with scratch(store) as path:
        writer = None
        try:
            for part in parts:
                table = pq.read_table(part)
                if writer is None:
                    writer = _result_writer(path, fmt, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
        with open(path, "rb") as stream:
            return store.save(key, stream)


def _result_writer(path: Path, fmt: str, schema: pa.Schema):
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetWriter(path, schema)
    import pyarrow.csv as pacsv

    return pacsv.CSVWriter(path, schema)


@contextmanager
def scratch(store: ArtifactStore) -> Iterator[Path]:
    """A temporary file in the store's scratch directory (beside a local store's files, so
    the save is a copy on one disk; a remote store's cache directory otherwise)."""
    fd, name = tempfile.mkstemp(dir=store.scratch_dir, prefix=".batch-", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def input_key(batch_id: str, fmt: str) -> str:
    return f"{batch_id}.input.{fmt}"


def rows_key(batch_id: str) -> str:
    return f"{batch_id}.rows.parquet"


def part_key(batch_id: str, index: int, attempt: int) -> str:
    return f"{batch_id}.p{index:05d}a{attempt}.parquet"


def result_key(batch_id: str, fmt: str) -> str:
    return f"{batch_id}.result.{fmt}"
