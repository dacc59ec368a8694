"""Flask CLI commands: `flask --app web create-admin EMAIL`."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import select

from shared.maintenance import purge_deleted_artifacts
from shared.models import User
from shared.schemas.auth import Credentials
from web import extensions
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


@click.command("purge-artifacts")
@click.option("--grace-s", type=int, default=None, help="Override ARTIFACT_GRACE_S")
@with_appcontext
def purge_artifacts(grace_s: int | None) -> None:
    """Delete the files of soft-deleted models past the grace period (beat does this hourly)."""
    grace = extensions.settings().artifact_grace_s if grace_s is None else grace_s
    removed = purge_deleted_artifacts(db.session, extensions.store(), grace)
    db.session.commit()
    click.echo(f"removed {removed} artifact file(s)")


def register_commands(app: Flask) -> None:
    app.cli.add_command(create_admin)
    app.cli.add_command(purge_artifacts)
