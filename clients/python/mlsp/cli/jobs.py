"""Predictions: `mlsp predict`, `mlsp submit`, `mlsp jobs list|show|cancel`."""

from __future__ import annotations

import json
from typing import Any

import click

from mlsp.cli.aliases import prediction_ref
from mlsp.cli.config import State
from mlsp.cli.options import json_option, pass_state, resolve_model
from mlsp.cli.output import emit, job_view, jobs_table

JOB_STATUSES = click.Choice(["queued", "running", "succeeded", "failed", "cancelled", "expired"])

input_option = click.option(
    "--input",
    "-i",
    "source",
    type=click.File("r"),
    required=True,
    help='JSON rows ([[...], ...] or {"inputs": [...]}); - reads stdin.',
)
proba_option = click.option("--proba", is_flag=True, help="Also return class probabilities.")


def read_rows(source: Any) -> list[Any]:
    """Rows from a JSON list or a `{"inputs": [...]}` request body."""
    try:
        data = json.load(source)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--input") from None
    rows = data.get("inputs") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not rows:
        raise click.BadParameter("expected a non-empty list of rows", param_hint="--input")
    return rows


@click.command()
@click.argument("model")
@input_option
@proba_option
@click.option("--timeout", type=float, default=30, show_default=True, help="Seconds to wait.")
@json_option
@pass_state
def predict(state: State, model: str, source: Any, proba: bool, timeout: float) -> None:
    """Predict and wait for the result (MODEL: id, NAME, NAME@ALIAS, NAME@vN or NAME:VERSION)."""
    client = state.client()
    job = client.predict(
        prediction_ref(model), read_rows(source), timeout=timeout, return_probabilities=proba
    )
    emit(state, job, job_view)


@click.command()
@click.argument("model")
@input_option
@proba_option
@click.option("--wait", is_flag=True, help="Wait for the job to finish.")
@click.option(
    "--timeout", type=float, default=300, show_default=True, help="With --wait: seconds to wait."
)
@click.option("--idempotency-key", help="Resending with the same key returns the same job.")
@json_option
@pass_state
def submit(
    state: State,
    model: str,
    source: Any,
    proba: bool,
    wait: bool,
    timeout: float,
    idempotency_key: str | None,
) -> None:
    """Queue a prediction job; prints its id (and with --wait, its result)."""
    client = state.client()
    job = client.submit(
        prediction_ref(model), read_rows(source), proba, idempotency_key=idempotency_key
    )
    if wait:
        job.wait(timeout=timeout)
    emit(state, job, job_view)


@click.group()
def jobs() -> None:
    """Prediction jobs: the history, one job, cancel."""


@jobs.command("list")
@click.option("--model", "model_ref", help="Only jobs of this model (id, NAME, NAME:VERSION).")
@click.option("--status", type=JOB_STATUSES)
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@json_option
@pass_state
def list_jobs(state: State, model_ref: str | None, status: str | None, limit: int) -> None:
    """Your prediction history, newest first."""
    client = state.client()
    model = resolve_model(client, model_ref) if model_ref else None
    found = client.jobs(model=model, status=status, limit=limit)
    if state.json:
        emit(state, found)
        return
    # Deleted models are not listed: their jobs keep the short id.
    names = {m.id: m.name for m in client.models()} if found else {}
    emit(state, found, lambda jobs: jobs_table(jobs, names))


@jobs.command()
@click.argument("job_id")
@click.option("--wait", type=click.FloatRange(0, 60), default=0, help="Long-poll seconds.")
@json_option
@pass_state
def show(state: State, job_id: str, wait: float) -> None:
    """One job with its result."""
    emit(state, state.client().job(job_id, wait=wait), job_view)


@jobs.command()
@click.argument("job_id")
@json_option
@pass_state
def cancel(state: State, job_id: str) -> None:
    """Cancel a queued or running job."""
    emit(state, state.client().cancel(job_id), job_view)


COMMANDS = (predict, submit, jobs)
