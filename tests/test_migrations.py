"""The migrations (migrations/): they agree with the models, build the whole schema with plain
Alembic, and store job matrices uncompressed."""

from __future__ import annotations

from sqlalchemy import text


def test_schema_matches_migrations(app):
    """No pending autogenerate diff: the models and the migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from shared.models import Base
    from web.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_job_matrices_are_stored_uncompressed(app):
    """Measured values do not compress: PostgreSQL must not spend the time trying (0006)."""
    from web.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        storage = conn.execute(
            text(
                "SELECT attstorage FROM pg_attribute"
                " WHERE attrelid = 'jobs'::regclass AND attname = 'input_matrix'"
            )
        ).scalar()
    assert storage == "e"  # EXTERNAL: out of line, never compressed


def test_plain_alembic_upgrade_on_an_empty_database():
    """`alembic upgrade head` (no Flask) builds the whole schema on an empty database."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from tests.fixtures.database import drop_test_database

    url = make_url(os.environ["DATABASE_URL"])
    name = f"{url.database}_alembic"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        env = {**os.environ, "DATABASE_URL": url.set(database=name).render_as_string(False)}
        root = Path(__file__).resolve().parents[1]
        subprocess.run(
            [sys.executable, "-m", "alembic", "-c", "migrations/alembic.ini", "upgrade", "head"],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
        )
        with create_engine(url.set(database=name)).connect() as conn:
            tables = set(conn.execute(text("SELECT tablename FROM pg_tables")).scalars())
        assert {"users", "api_keys", "models", "jobs", "alembic_version"} <= tables
    finally:
        drop_test_database(url, name)
        admin.dispose()
