"""`mlsp models alias ...` and `mlsp models traffic ...`: release a model version by name.

mlsp models alias set churn production 4      # prints the previous version
mlsp models traffic set churn 3=90 4=10 --shadow 5:100
mlsp models alias list churn
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from mlsp.cli.config import State
from mlsp.cli.options import json_option, pass_state
from mlsp.cli.output import emit, table


def prediction_ref(ref: str) -> str:
    """MODEL of a prediction as the server resolves it: an id, NAME (its traffic split, else
    its production alias, else its newest ready version), NAME@ALIAS or NAME@vN; the older
    NAME:VERSION is sent as NAME@vVERSION."""
    name, sep, version = ref.partition(":")
    if sep and version.isdigit() and "@" not in name:
        return f"{name}@v{version}"
    return ref


def _route(value: str) -> tuple[int, int]:
    """`VERSION=WEIGHT` (a route) or `VERSION:PERCENT` (the shadow)."""
    version, sep, share = value.replace(":", "=").partition("=")
    if not sep or not version.isdigit() or not share.isdigit():
        raise click.BadParameter(f"{value!r}: expected VERSION=WEIGHT, e.g. 3=90")
    return int(version), int(share)


def name_view(described: dict[str, Any]) -> Table:
    traffic = described.get("traffic") or {}
    weights = {r["version"]: r["weight"] for r in traffic.get("routes", [])}
    shadow = traffic.get("shadow") or {}
    return table(
        ["version", "status", "aliases", "weight", "shadow %", "id"],
        [
            (
                m["version"],
                m["status"],
                ", ".join(m.get("aliases", [])),
                weights.get(m["version"]),
                shadow.get("percent") if shadow.get("version") == m["version"] else None,
                m["id"],
            )
            for m in described["versions"]
        ],
        title=described["name"],
    )


@click.group("alias")
def alias() -> None:
    """Aliases of a model name (NAME@ALIAS in predictions)."""


@alias.command("list")
@click.argument("name")
@json_option
@pass_state
def list_aliases(state: State, name: str) -> None:
    """The name's versions with their aliases, traffic weights and shadow."""
    emit(state, state.client().model_name(name), name_view)


@alias.command("set")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@click.argument("version", type=click.IntRange(1))
@json_option
@pass_state
def set_alias(state: State, name: str, alias_name: str, version: int) -> None:
    """Point NAME@ALIAS at VERSION (a ready version); prints the version it left."""
    moved = state.client().set_alias(name, alias_name, version)
    if state.json:
        emit(state, moved)
        return
    before = moved["previous_version"]
    was = f" (was v{before}: roll back with `mlsp models alias set {name} {alias_name} {before}`)"
    click.echo(f"{name}@{alias_name} -> v{version}{was if before else ''}")


@alias.command("delete")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@pass_state
def delete_alias(state: State, name: str, alias_name: str) -> None:
    """Remove NAME@ALIAS."""
    state.client().delete_alias(name, alias_name)
    click.echo(f"Deleted {name}@{alias_name}")


@alias.command("history")
@click.argument("name")
@json_option
@pass_state
def history(state: State, name: str) -> None:
    """Alias moves and traffic changes, newest first."""
    events = state.client().alias_history(name)
    emit(
        state,
        events,
        lambda items: table(
            ["at", "kind", "alias", "from", "to", "traffic"],
            [
                (e["at"], e["kind"], e["alias"], e["from_version"], e["to_version"], e["traffic"])
                for e in items
            ],
        ),
    )


@click.group("traffic")
def traffic() -> None:
    """Traffic split of a bare NAME over versions, and its shadow."""


@traffic.command("set")
@click.argument("name")
@click.argument("routes", nargs=-1, required=True, type=_route, metavar="VERSION=WEIGHT...")
@click.option("--shadow", type=_route, metavar="VERSION:PERCENT", help="Copy to a version.")
@json_option
@pass_state
def set_traffic(
    state: State, name: str, routes: tuple[tuple[int, int], ...], shadow: tuple[int, int] | None
) -> None:
    """Split NAME's predictions by integer weights summing to 100, e.g. 3=90 4=10."""
    emit(state, state.client().set_traffic(name, dict(routes), shadow=shadow), None)


@traffic.command("clear")
@click.argument("name")
@pass_state
def clear_traffic(state: State, name: str) -> None:
    """Remove the split (NAME follows its production alias, else the newest version)."""
    state.client().delete_traffic(name)
    click.echo(f"Cleared the traffic split of {name}")


COMMANDS = (alias, traffic)
