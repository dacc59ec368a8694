"""Pieces shared by the commands: the state decorator, `--json`, model references."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import click

from mlsp.cli.config import State
from mlsp.client import Client
from mlsp.resources import Model

pass_state = click.make_pass_decorator(State, ensure=True)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`--json` on a command, as well as on `mlsp` itself."""

    def _set(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(State).json = True

    return click.option(
        "--json", is_flag=True, expose_value=False, callback=_set, help="Print JSON (scripts)."
    )(fn)


def resolve_model(client: Client, ref: str) -> Model:
    """MODEL arguments: a model id, `name` (newest ready version) or `name:version`."""
    try:
        return client.model(str(uuid.UUID(ref)))
    except ValueError:
        pass
    name, _, version = ref.partition(":")
    if version and not version.isdigit():
        raise click.BadParameter(f"{ref!r}: expected ID, NAME or NAME:VERSION", param_hint="MODEL")
    return client.find_model(name, int(version) if version else None)
