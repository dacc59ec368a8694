"""`mlsp predict-file` through one server batch (large files): the CSV streamed up as it is
(behind a header naming the model's columns when the model has no feature names, or the file
no header), followed with a progress bar, and the server's CSV result rewritten into the file
the job path writes: every input cell as it was, `prediction`, `proba_<class>`.

The server's CSV writes numbers its own way (1e-05 as 0.00001, 1.0 as 1, true for True), so the
values are read back and written as the job path writes the JSON it receives.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import click

from mlsp.cli.batches import follow
from mlsp.cli.csvrows import Layout, result_columns
from mlsp.errors import Conflict
from mlsp.multipart import Joined, stream_size
from mlsp.resources import Batch, Model


def server_names(model: Model) -> list[str]:
    """The column names the server reads the model's features by (as it does: its recorded
    columns, else its feature names, else x0, x1, ...)."""
    schema = model.raw.get("input_schema") or {}
    if columns := schema.get("columns"):
        return [c["name"] for c in columns]
    return schema.get("feature_names") or [f"x{i}" for i in range(schema.get("n_features") or 0)]


def sent_header(model: Model, layout: Layout) -> list[str] | None:
    """The header to send in place of the file's; None when the file's own names the model's
    columns already. Feature columns get the server's names, the others names of their own."""
    names = server_names(model)
    if layout.header is not None and model.feature_names:
        return None
    width = len(layout.header) if layout.header is not None else len(layout.columns)
    header = [f"_mlsp_{i}" for i in range(width)]
    while set(header) & set(names):  # a model whose features are called _mlsp_0, ...
        header = [f"_{name}" for name in header]
    for feature, col in enumerate(layout.columns):
        header[col] = names[feature]
    return header


@contextlib.contextmanager
def upload_source(src: Path, header: list[str] | None, has_header: bool) -> Iterator[BinaryIO]:
    """The file as sent: itself, or a new header line followed by its rows (not copied)."""
    with open(src, "rb") as fh:
        if header is None:
            yield fh
            return
        start = len(fh.readline()) if has_header else 0
        line = _csv_line(header).encode()
        fh.seek(start)
        yield Joined([line, (fh, start, stream_size(fh))])  # type: ignore[misc]


def _csv_line(cells: list[str]) -> str:
    line = io.StringIO()
    csv.writer(line).writerow(cells)
    return line.getvalue()


def label_reader(model: Model) -> Callable[[str], Any]:
    """A prediction cell of the server's CSV as the value the job path gets in JSON."""
    schema = model.raw.get("output_schema") or {}
    task, classes = schema.get("task"), schema.get("classes") or []
    if task in ("clustering", "outlier"):
        return int
    if task != "classification":
        return float
    if classes and all(isinstance(c, bool) for c in classes):
        return {"true": True, "false": False}.__getitem__
    if classes and all(isinstance(c, int | float) for c in classes):
        by_value = {float(c): c for c in classes}
        return lambda text: by_value.get(float(text), float(text))
    return str


@contextlib.contextmanager
def cancelled_unless_done(batch: Batch) -> Iterator[Batch]:
    """An interrupted or failed run leaves no batch of its own running."""
    try:
        yield batch
    except BaseException:
        if not batch.done:
            with contextlib.suppress(Conflict):
                batch.cancel()
        raise


def run(client: Any, model: Model, src: Path, dst: Path, layout: Layout, **opts: Any) -> Batch:
    """Predict `src` as one batch and write `dst` (via `dst`.part) as the job path would."""
    header = sent_header(model, layout)
    with upload_source(src, header, layout.header is not None) as source:
        batch = client.batch_predict(
            model,
            source,
            filename=src.name,
            output_format="csv",
            keep_columns="*",
            return_probabilities=opts["proba"],
        )
    with cancelled_unless_done(batch):
        follow(batch, quiet=opts["quiet"], idle=opts["timeout"]).raise_for_status()
    result = dst.with_name(dst.name + ".batch")
    part = dst.with_name(dst.name + ".part")
    try:
        batch.download(result)
        rewrite(result, part, model, layout, opts["proba"], header or layout.header or [])
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    finally:
        result.unlink(missing_ok=True)
    os.replace(part, dst)
    return batch


def rewrite(
    result: Path, part: Path, model: Model, layout: Layout, proba: bool, sent: list[str]
) -> None:
    """The server's rows (input cells, prediction, probabilities, error) in the job path's
    form; the first failed row is named by its file line and column, as the job path does."""
    label = label_reader(model)
    width = len(sent)
    first_line = 2 if layout.header is not None else 1
    with open(result, newline="") as fin, open(part, "w", newline="") as fout:
        rows, sink = csv.reader(fin), csv.writer(fout)
        next(rows)  # the server's header: its own names for the columns
        if layout.header is not None:
            sink.writerow([*layout.header, *result_columns(model, proba)])
        for index, row in enumerate(rows):
            if row[-1]:
                raise _failed(row[-1], first_line + index, model, layout)
            values = [label(row[width]), *(float(p) for p in row[width + 1 : -1])]
            sink.writerow([*row[:width], *values])


def _failed(error: str, line: int, model: Model, layout: Layout) -> click.ClickException:
    """The server's `column: reason` of a row as `line N, column NAME: reason`."""
    column, _, reason = error.partition(": ")
    names = server_names(model)
    if column in names:
        where = layout.name(names.index(column))
        return click.ClickException(f"line {line}, column {where}: {reason}")
    return click.ClickException(f"line {line}: {error}")
