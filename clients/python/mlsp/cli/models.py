"""`mlsp models ...`: list, upload, show, update, enable/disable, delete, analytics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mlsp.cli.config import State
from mlsp.cli.options import json_option, pass_state, resolve_model
from mlsp.cli.output import analytics_view, emit, model_view, models_table

STATUSES = click.Choice(["validating", "ready", "failed", "disabled"])


@click.group()
def models() -> None:
    """Models: MODEL is an id, NAME (newest ready version) or NAME:VERSION."""


@models.command("list")
@click.option("--name", help="Only versions of this name.")
@click.option("--status", type=STATUSES)
@json_option
@pass_state
def list_models(state: State, name: str | None, status: str | None) -> None:
    """Your models, newest first."""
    emit(state, state.client().models(name=name, status=status), models_table)


@models.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Model name (a new version if it exists).")
@click.option("--description")
@click.option(
    "--sample", type=click.File("r"), help="JSON file of rows to validate the model with."
)
@click.option(
    "--wait", type=float, default=60, show_default=True, help="Seconds to wait for validation."
)
@json_option
@pass_state
def upload(
    state: State, path: Path, name: str, description: str | None, sample: Any, wait: float
) -> None:
    """Upload a joblib/pickle, skops or ONNX file; it is validated by a worker."""
    rows = json.load(sample) if sample else None
    model = state.client().upload(path, name, description=description, sample=rows, wait=wait)
    emit(state, model, model_view)
    if model.status == "failed":
        raise click.ClickException(f"validation failed: {model.raw.get('error')}")


@models.command()
@click.argument("model")
@json_option
@pass_state
def show(state: State, model: str) -> None:
    """One model: status, schemas, runtime, error."""
    emit(state, resolve_model(state.client(), model), model_view)


@models.command()
@click.argument("model")
@click.option("--description")
@click.option("--runtime", type=click.Choice(["auto", "sklearn"]))
@json_option
@pass_state
def update(state: State, model: str, description: str | None, runtime: str | None) -> None:
    """Change the description or the runtime preference."""
    changes = {k: v for k, v in {"description": description, "runtime": runtime}.items() if v}
    if not changes:
        raise click.UsageError("nothing to change: give --description or --runtime")
    client = state.client()
    emit(state, client.update_model(resolve_model(client, model), **changes), model_view)


@models.command()
@click.argument("model")
@json_option
@pass_state
def disable(state: State, model: str) -> None:
    """Stop taking predictions (history kept)."""
    client = state.client()
    emit(state, client.disable_model(resolve_model(client, model)), model_view)


@models.command()
@click.argument("model")
@json_option
@pass_state
def enable(state: State, model: str) -> None:
    """Take predictions again."""
    client = state.client()
    emit(state, client.enable_model(resolve_model(client, model)), model_view)


@models.command()
@click.argument("model")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def delete(state: State, model: str, yes: bool) -> None:
    """Delete a model version (its prediction history is kept)."""
    client = state.client()
    found = resolve_model(client, model)
    if not yes:
        click.confirm(f"Delete {found.name} v{found.version} ({found.id})?", abort=True)
    client.delete_model(found)
    click.echo(f"Deleted {found.name} v{found.version}")


@models.command()
@click.argument("model")
@click.option("--days", type=click.IntRange(1, 90), default=7, show_default=True)
@json_option
@pass_state
def analytics(state: State, model: str, days: int) -> None:
    """Job counts, success rate, latency percentiles."""
    client = state.client()
    report = client.analytics(resolve_model(client, model), days=days)
    emit(state, report, analytics_view)


COMMANDS = (models,)
