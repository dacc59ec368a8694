"""`mlsp batch submit|status|download|cancel|list`: whole files predicted by the server, chunk by
chunk, followed with a progress bar of the rows it has done."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from mlsp.cli.config import State
from mlsp.cli.options import json_option, pass_state, resolve_model
from mlsp.cli.output import console, emit, fields, table
from mlsp.client import Client
from mlsp.resources import Batch

BATCH_STATUSES = click.Choice(["queued", "running", "succeeded", "partial", "failed", "cancelled"])
BATCH_FIELDS = (
    "id",
    "model_id",
    "model_version",
    "status",
    "rows_total",
    "rows_done",
    "rows_failed",
    "input",
    "output_format",
    "keep_columns",
    "return_probabilities",
    "created_at",
    "started_at",
    "finished_at",
    "error",
)


def batch_view(batch: Batch) -> Table:
    return fields(batch.raw, BATCH_FIELDS)


def batches_table(batches: list[Batch], names: dict[str, str]) -> Table:
    """Batches with their model's NAME:VERSION (`names`: model id -> name; else a short id)."""
    return table(
        ["id", "model", "status", "rows", "failed", "file", "created"],
        [
            (
                b.id,
                f"{names.get(b.model_id, b.model_id[:8])}:{b.raw['model_version']}",
                b.status,
                f"{b.rows_done}/{'?' if b.rows_total is None else b.rows_total}",
                b.rows_failed,
                b.raw["input"].get("filename"),
                str(b.raw["created_at"])[:19],
            )
            for b in batches
        ],
    )


def follow(
    batch: Batch, quiet: bool = False, timeout: float | None = None, idle: float | None = None
) -> Batch:
    """Wait for the batch with a progress bar (on stderr) of its rows done out of its rows
    (unknown, so no bar yet, until the server has read the file through); give up after
    `timeout` s in all, or `idle` s without progress."""
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn())
    progress = Progress(
        *columns, TimeRemainingColumn(), console=console(stderr=True), disable=quiet
    )
    with progress:
        task = progress.add_task(batch.status, total=None)

        last = [(batch.status, batch.rows_done), time.monotonic()]

        def show(seen: Batch) -> None:
            progress.update(
                task, description=seen.status, total=seen.rows_total, completed=seen.rows_done
            )
            if (seen.status, seen.rows_done) != last[0]:
                last[:] = [(seen.status, seen.rows_done), time.monotonic()]
            elif idle is not None and time.monotonic() - last[1] > idle:
                raise click.ClickException(f"batch {seen.id}: no progress in {idle:g}s")

        return batch.wait(timeout=timeout, poll=1.0, on_progress=show)


def summary(batch: Batch) -> str:
    total = "?" if batch.rows_total is None else batch.rows_total
    return (
        f"batch {batch.id} {batch.status}: {batch.rows_done}/{total} rows,"
        f" {batch.rows_failed} failed"
    )


def report(state: State, batch: Batch, downloaded: Path | None = None, brief: bool = False) -> None:
    """The batch (JSON, a table, or with `brief` one line), then what the download wrote, with
    a warning for failed rows (each has its `error` in the file)."""
    emit(state, batch, summary if brief else batch_view)
    if state.json:
        return
    if batch.rows_failed:
        click.echo(f"{batch.rows_failed} rows failed: see their `error` column", err=True)
    if downloaded is not None:
        click.echo(f"Wrote {batch.rows_done} rows to {downloaded}", err=True)


@click.group("batch")
def batch() -> None:
    """Batches: a whole CSV or Parquet file predicted by the server, chunk by chunk."""


@batch.command()
@click.argument("model")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output-format", type=click.Choice(["csv", "parquet"]), help="Default: FILE's.")
@click.option("--keep-columns", help="Input columns copied to the output: a,b,c or '*' for all.")
@click.option("--probabilities", "--proba", is_flag=True, help="Add a proba_<class> column each.")
@click.option("--wait", is_flag=True, help="Follow the batch until it finishes.")
@click.option(
    "--download",
    "target",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Wait, then write the result file here.",
)
@click.option("--timeout", type=float, help="With --wait/--download: seconds to wait at most.")
@json_option
@pass_state
def submit(state: State, model: str, file: Path, **opts: Any) -> None:
    """Send FILE (a CSV with a header row, or Parquet) to be predicted by MODEL (id, NAME or
    NAME:VERSION); the file's columns must include the model's."""
    client = state.client()
    target, timeout = opts.pop("target"), opts.pop("timeout")
    found = client.batch_predict(
        resolve_model(client, model),
        file,
        output_format=opts["output_format"],
        keep_columns=opts["keep_columns"],
        return_probabilities=opts["probabilities"],
    )
    if opts["wait"] or target is not None:
        follow(found, quiet=state.json, timeout=timeout).raise_for_status()
    report(state, found, found.download(target) if target is not None else None, brief=True)


@batch.command()
@click.argument("batch_id")
@click.option("--wait", is_flag=True, help="Follow it with a progress bar until it finishes.")
@json_option
@pass_state
def status(state: State, batch_id: str, wait: bool) -> None:
    """One batch: its status and rows done."""
    found = state.client().batch(batch_id)
    report(state, follow(found, quiet=state.json) if wait else found)


@batch.command()
@click.argument("batch_id")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_state
def download(state: State, batch_id: str, path: Path) -> None:
    """Write a finished batch's result file to PATH."""
    client = state.client()
    client.download_batch(batch_id, path)
    report(state, client.batch(batch_id), path)


@batch.command()
@click.argument("batch_id")
@json_option
@pass_state
def cancel(state: State, batch_id: str) -> None:
    """Cancel a queued or running batch."""
    emit(state, state.client().cancel_batch(batch_id), batch_view)


@batch.command("list")
@click.option("--model", "model_ref", help="Only batches of this model (id, NAME, NAME:VERSION).")
@click.option("--status", type=BATCH_STATUSES)
@json_option
@pass_state
def list_batches(state: State, model_ref: str | None, status: str | None) -> None:
    """Your batches, newest first."""
    client = state.client()
    model = resolve_model(client, model_ref) if model_ref else None
    found = client.batches(model=model, status=status)
    emit(state, found, lambda items: batches_table(items, _names(client) if items else {}))


def _names(client: Client) -> dict[str, str]:
    # Deleted models are not listed: their batches keep the short id.
    return {m.id: m.name for m in client.models()}


COMMANDS = (batch,)
