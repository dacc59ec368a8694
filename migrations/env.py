"""Alembic environment: runs under `flask db ...` (Flask-Migrate) and under plain `alembic`."""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app, has_app_context
from sqlalchemy import create_engine

from shared.config import get_settings
from shared.models import Base

config = context.config
if config.config_file_name and not logging.getLogger().handlers:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

target_metadata = Base.metadata


def _url() -> str:
    if has_app_context():
        return current_app.extensions["migrate"].db.engine.url.render_as_string(hide_password=False)
    return get_settings().sqlalchemy_url


def _configure_args() -> dict:
    args = {}
    if has_app_context():
        args = dict(current_app.extensions["migrate"].configure_args)
    args.setdefault("compare_type", True)
    return args


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _skip_empty(ctx, revision, directives):
    # `flask db migrate` with no change must not write an empty revision file.
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        logger.info("No changes in schema detected.")


def run_migrations_online() -> None:
    args = _configure_args()
    args.setdefault("process_revision_directives", _skip_empty)
    connectable = create_engine(_url())
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, **args)
        with context.begin_transaction():
            context.run_migrations()
    connectable.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
