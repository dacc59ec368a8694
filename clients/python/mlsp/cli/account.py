"""Accounts and API keys: register, login (stores an API key), logout, whoami, keys.

Key management needs a password login (the API refuses API keys there). The CLI never stores a
password or a refresh token: `mlsp keys ...` logs in for the one command (password prompt, or
`--password`/`MLSP_PASSWORD` for scripts) and logs out again.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import click

from mlsp.cli.config import State, save
from mlsp.cli.options import json_option, pass_state
from mlsp.cli.output import emit, fields, table
from mlsp.client import Client

email_option = click.option("--email", help="Account email [default: the one of `mlsp login`].")
password_option = click.option(
    "--password", envvar="MLSP_PASSWORD", help="Password [env MLSP_PASSWORD; else prompted]."
)


@click.command()
@click.option("--email", prompt=True)
@click.option(
    "--password", envvar="MLSP_PASSWORD", prompt=True, hide_input=True, confirmation_prompt=True
)
@json_option
@pass_state
def register(state: State, email: str, password: str) -> None:
    """Create an account on the server."""
    emit(state, state.anonymous().register(email, password), lambda u: f"Registered {u['email']}")


@click.command()
@click.option("--email", prompt=True)
@click.option("--password", envvar="MLSP_PASSWORD", prompt=True, hide_input=True)
@click.option(
    "--key-name",
    default=lambda: f"mlsp-cli@{socket.gethostname()}"[:100],
    show_default="mlsp-cli@HOSTNAME",
    help="Name of the API key created for the CLI.",
)
@click.option("--expires-in-days", type=click.IntRange(1, 365), default=90, show_default=True)
@json_option
@pass_state
def login(state: State, email: str, password: str, key_name: str, expires_in_days: int) -> None:
    """Log in with a password, create an API key and store it (with the URL) in the config."""
    client = state.anonymous()
    client.login(email, password)
    key = client.create_api_key(key_name, expires_in_days)
    client.logout()  # the access token is not kept; the API key is the CLI's credential
    stored = {"url": client.url, "email": email, "api_key": key["key"], "key_id": key["id"]}
    save(state.path, stored)
    shown = {k: key[k] for k in ("id", "name", "prefix", "expires_at")}
    message = f"Logged in as {email}; API key {key['prefix']}… stored in {state.path}"
    emit(state, {**shown, "config": str(state.path)}, lambda _: message)


@click.command()
@click.option("--revoke", is_flag=True, help="Also revoke the stored key (password login).")
@email_option
@password_option
@pass_state
def logout(state: State, revoke: bool, email: str | None, password: str | None) -> None:
    """Forget the stored API key (and, with --revoke, revoke it on the server)."""
    stored = state.stored()
    if revoke and stored.get("key_id"):
        with _password_session(state, email, password) as client:
            client.revoke_api_key(stored["key_id"])
    save(state.path, {k: v for k, v in stored.items() if k not in ("api_key", "key_id")})
    click.echo("Logged out" + (" and revoked the key" if revoke else ""))


@click.command()
@json_option
@pass_state
def whoami(state: State) -> None:
    """The account the credentials belong to."""
    emit(state, state.client().me(), lambda u: fields(u, ("id", "email", "is_admin")))


@contextmanager
def _password_session(state: State, email: str | None, password: str | None) -> Iterator[Client]:
    email = email or state.stored().get("email") or click.prompt("Email")
    password = password or click.prompt(f"Password for {email}", hide_input=True)
    client = state.anonymous()
    client.login(email, password)
    try:
        yield client
    finally:
        client.logout()


@click.group()
def keys() -> None:
    """API keys (these commands log in with your password)."""


@keys.command("list")
@email_option
@password_option
@json_option
@pass_state
def keys_list(state: State, email: str | None, password: str | None) -> None:
    """Your API keys (without secrets)."""
    with _password_session(state, email, password) as client:
        items = client.api_keys()
    columns = ("id", "name", "prefix", "is_active", "expires_at", "last_used_at")
    emit(state, items, lambda ks: table(columns, [[k.get(c) for c in columns] for k in ks]))


@keys.command("create")
@click.argument("name")
@click.option("--expires-in-days", type=click.IntRange(1, 365), default=90, show_default=True)
@email_option
@password_option
@json_option
@pass_state
def keys_create(
    state: State, name: str, expires_in_days: int, email: str | None, password: str | None
) -> None:
    """Create a key; its secret is shown once."""
    with _password_session(state, email, password) as client:
        key = client.create_api_key(name, expires_in_days)
    emit(state, key, lambda k: fields(k, ("id", "name", "key", "expires_at")))


@keys.command("revoke")
@click.argument("key_id")
@email_option
@password_option
@pass_state
def keys_revoke(state: State, key_id: str, email: str | None, password: str | None) -> None:
    """Revoke a key: it stops working at once."""
    with _password_session(state, email, password) as client:
        client.revoke_api_key(key_id)
    click.echo(f"Revoked {key_id}")


@click.command()
@json_option
@pass_state
def health(state: State) -> None:
    """Server health: database, broker, workers, queue depths."""
    emit(state, state.anonymous().health(), lambda h: fields(h, ("status", "checks", "queues")))


COMMANDS = (register, login, logout, whoami, keys, health)
