"""Flask CLI commands: `flask --app web create-admin EMAIL`."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import select

from shared.models import User
from shared.schemas.auth import Credentials
from web.auth.passwords import hash_password
from web.extensions import db


@click.command("create-admin")
@with_appcontext
@click.argument("email")
@click.password_option(
    help="Password (prompted when not given; or set MLSP_ADMIN_PASSWORD)",
    envvar="MLSP_ADMIN_PASSWORD",
)
def create_admin(email: str, password: str) -> None:
    """Create an administrator, or promote an existing account (the API never grants admin)."""
    creds = Credentials(email=email, password=password)
    user = db.session.scalar(select(User).where(User.email == creds.email))
    if user is None:
        user = User(email=creds.email, password_hash=hash_password(creds.password))
        db.session.add(user)
    user.is_admin = True
    user.is_active = True
    db.session.commit()
    click.echo(f"admin ready: {user.email} ({user.id})")


def register_commands(app: Flask) -> None:
    app.cli.add_command(create_admin)
