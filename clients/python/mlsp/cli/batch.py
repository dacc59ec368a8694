"""`mlsp predict-file`: a CSV in, the same CSV with predictions out, through many jobs (or,
for a large file, one server batch: cli/filebatch.py).

The file is cut into jobs of `--chunk-rows` rows, of which at most `--concurrency` are in flight
at once; results are written in input order as the oldest job finishes, so memory stays bounded
by the jobs in flight, not by the file.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from mlsp.cli import filebatch
from mlsp.cli.config import State
from mlsp.cli.csvrows import Layout, chunks, count_rows, layout_of, output_rows, result_columns
from mlsp.cli.options import json_option, pass_state, resolve_model
from mlsp.cli.output import console, emit
from mlsp.client import Client
from mlsp.errors import Conflict, JobTimeout, ValidationError
from mlsp.resources import Job, Model

MAX_ROWS_PER_REQUEST = 10_000  # the server's default MAX_ROWS_PER_REQUEST
POLL_S = 5  # long-poll slice: how soon an interrupted run notices and cancels its jobs


@dataclass
class Batch:
    """One run: where to send, how to cut, and what has been written so far."""

    client: Client
    model: Model
    chunk_rows: int
    concurrency: int
    proba: bool
    timeout: float
    keep: tuple[str, ...] = ()
    stop: threading.Event = field(default_factory=threading.Event)
    job_ids: list[str] = field(default_factory=list)
    rows: int = 0

    def run_chunk(self, rows: list[list[Any]], layout: Layout, first_line: int) -> Job:
        """Submit one job and wait for it (in a pool thread); cancel it if the run stops."""
        try:
            job = self.client.submit(self.model, rows, return_probabilities=self.proba)
        except ValidationError as err:
            raise _in_file(err, layout, first_line) from err
        deadline = time.monotonic() + self.timeout
        while not job.done:
            if self.stop.is_set():
                _cancel(job)
                raise click.Abort()
            if time.monotonic() >= deadline:
                raise JobTimeout(job, self.timeout)
            job.refresh(wait=min(POLL_S, deadline - time.monotonic()))
        return job.raise_for_status()


def _in_file(err: ValidationError, layout: Layout, first_line: int) -> Exception:
    """The server's refusal of a row (a null where the model needs a value, say), named by the
    file's line and column rather than the row's place in its job."""
    row, column = err.details.get("row"), err.details.get("column")
    if not isinstance(row, int):
        return err
    where = f"line {first_line + row}"
    if isinstance(column, int) and 0 <= column < len(layout.columns):
        where += f", column {layout.name(column)}"
    elif column is not None:
        where += f", column {column!r}"
    return click.ClickException(f"{where}: {err.message}")


def _cancel(job: Job) -> None:
    with contextlib.suppress(Conflict):  # it finished meanwhile
        job.cancel()


def _progress(quiet: bool) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console(stderr=True),
        disable=quiet,
    )


def _pipeline(
    batch: Batch,
    rows: Iterable[list[str]],
    layout: Layout,
    sink: Any,
    advance: Callable[[int], None],
) -> None:
    """Send chunks with at most `concurrency` in flight; write results in input order."""
    window: deque[tuple[list[list[str]], Future[Job]]] = deque()

    def write_oldest() -> None:
        raw, pending = window.popleft()
        job = pending.result()
        sink.writerows(output_rows(raw, job))
        batch.job_ids.append(job.id)
        batch.rows += len(raw)
        advance(len(raw))

    first_line = 2 if layout.header is not None else 1
    with ThreadPoolExecutor(batch.concurrency, thread_name_prefix="mlsp-batch") as pool:
        try:
            for start, raw, parsed in chunks(rows, layout, batch.chunk_rows, first_line):
                window.append((raw, pool.submit(batch.run_chunk, parsed, layout, start)))
                if len(window) >= batch.concurrency:
                    write_oldest()
            while window:
                write_oldest()
        except BaseException:
            batch.stop.set()  # running chunks cancel their jobs; queued ones never start
            pool.shutdown(cancel_futures=True)
            raise


def predict_csv(
    batch: Batch, src: Path, dst: Path, quiet: bool = False, total: int | None = None
) -> None:
    """Predict every row of `src` into `dst` (via a temporary file, renamed when complete);
    `total`: its rows (header included) when already counted."""
    total = count_rows(src) if total is None else total
    part = dst.with_name(dst.name + ".part")
    try:
        with open(src, newline="") as fin, open(part, "w", newline="") as fout:
            reader, sink = csv.reader(fin), csv.writer(fout)
            first = next(reader, None)
            if first is None:
                raise click.UsageError(f"{src} is empty")
            layout = layout_of(first, batch.model, batch.keep)
            if layout.header is not None:
                sink.writerow([*layout.header, *result_columns(batch.model, batch.proba)])
            rows = reader if layout.header is not None else itertools.chain([first], reader)
            if not (total := total - (layout.header is not None)):
                raise click.UsageError(f"{src} has a header but no rows")
            with _progress(quiet) as progress:
                task = progress.add_task("predicting", total=total)
                _pipeline(batch, rows, layout, sink, lambda n: progress.advance(task, n))
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dst)


@click.command("predict-file")
@click.argument("model")
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "-o",
    "dst",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the CSV with predictions.",
)
@click.option(
    "--chunk-rows",
    type=click.IntRange(1, MAX_ROWS_PER_REQUEST),
    default=1000,
    show_default=True,
    help="Rows per job (the server takes at most 10,000).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 32),
    default=4,
    show_default=True,
    help="Jobs in flight at once.",
)
@click.option("--proba", is_flag=True, help="Add one probability column per class.")
@click.option(
    "--id-column",
    "id_columns",
    multiple=True,
    help="A column that is not a feature (an id), copied to the output. Repeatable.",
)
@click.option(
    "--keep-columns",
    default="",
    help="Comma-separated columns that are not features, copied to the output.",
)
@click.option(
    "--timeout",
    type=float,
    default=600,
    show_default=True,
    help="Seconds to wait for each job (a batch: seconds without progress).",
)
@click.option(
    "--via",
    type=click.Choice(["auto", "jobs", "batch"]),
    default="auto",
    show_default=True,
    help="Jobs sent from here, or one server batch; auto: a batch above --batch-above rows.",
)
@click.option(
    "--batch-above",
    type=click.IntRange(1),
    default=MAX_ROWS_PER_REQUEST,
    show_default=True,
    help="With --via auto: files with more rows go as one server batch.",
)
@json_option
@pass_state
def predict_file(state: State, model: str, src: Path, dst: Path, **opts: Any) -> None:
    """Predict every row of a CSV file; write the rows with a prediction column, in order.

    With feature names, the header must name the model's features (other columns are copied
    through); otherwise every column is a feature and the header row is optional, except the
    columns named by --id-column or --keep-columns (then the header names them). Cells are read
    as the model's column types (numbers, strings, true/false); an empty cell is a missing value.
    A large file goes as one server batch (`mlsp batch`), which writes the same file.
    """
    client = state.client()
    kept = [*opts.pop("id_columns"), *filter(None, opts.pop("keep_columns").split(","))]
    via, above = opts.pop("via"), opts.pop("batch_above")
    batch = Batch(client, resolve_model(client, model), keep=tuple(kept), **opts)
    total = None if via == "batch" else count_rows(src)
    if via == "batch" or (via == "auto" and total is not None and total - 1 > above):
        _via_batch(state, batch, src, dst)
        return
    predict_csv(batch, src, dst, quiet=state.json, total=total)
    jobs = len(batch.job_ids)
    summary = {"rows": batch.rows, "jobs": jobs, "out": str(dst), "job_ids": batch.job_ids}
    emit(state, summary, lambda _: f"Wrote {batch.rows} predictions to {dst} ({jobs} jobs)")


def _via_batch(state: State, run: Batch, src: Path, dst: Path) -> None:
    """The file as one server batch, written as the job path writes it."""
    with open(src, newline="") as fh:
        first = next(csv.reader(fh), None)
    if first is None:
        raise click.UsageError(f"{src} is empty")
    layout = layout_of(first, run.model, run.keep)
    opts = {"proba": run.proba, "timeout": run.timeout, "quiet": state.json}
    done = filebatch.run(run.client, run.model, src, dst, layout, **opts)
    rows = done.rows_done
    summary = {"rows": rows, "jobs": 0, "batch": done.id, "out": str(dst), "job_ids": []}
    emit(state, summary, lambda _: f"Wrote {rows} predictions to {dst} (batch {done.id})")
