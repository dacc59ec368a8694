"""App factory, error shape, OpenAPI and health probes on the real database and Redis."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from shared.config import Settings


def test_liveness(client):
    resp = client.get("/api/v1/health/live")
    assert resp.status_code == 200
    assert resp.json == {"status": "ok"}
    assert resp.headers["X-Request-ID"]


def test_readiness_checks_database_and_broker(client):
    assert client.get("/api/v1/health/ready").status_code == 200


def test_unknown_route_uses_error_shape(client):
    resp = client.get("/api/v1/nope")
    assert resp.status_code == 404
    assert resp.json["error"]["code"] == "not_found"
    assert resp.mimetype == "application/json"


def test_wrong_method_uses_error_shape(client):
    resp = client.delete("/api/v1/health/live")
    assert resp.status_code == 405
    assert resp.json["error"]["code"] == "method_not_allowed"


def test_malformed_json_is_400(client):
    resp = client.post("/api/v1/auth/register", data="{not json", content_type="application/json")
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "malformed_json"


def test_non_json_body_is_400(client):
    resp = client.post("/api/v1/auth/register", data="email=a", content_type="text/plain")
    assert resp.status_code == 400


def test_request_id_is_echoed(client):
    resp = client.get("/api/v1/health/live", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"


def test_unhandled_exception_is_500_without_internals():
    from web import create_app

    app = create_app()

    @app.get("/boom-test-only")
    def boom():
        raise RuntimeError("secret internals")

    resp = app.test_client().get("/boom-test-only")
    assert resp.status_code == 500
    assert resp.json == {"error": {"code": "internal_error", "message": "Internal server error"}}


def test_openapi_document_and_docs(client):
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/auth/register" in doc["paths"]
    assert client.get("/api/v1/docs").status_code in (301, 302)
    assert client.get("/api/v1/apidoc/swagger/").status_code == 200


def test_production_refuses_default_secret():
    """Refused where it is used: the web tier (workers run without it; tests/security)."""
    with pytest.raises(ValueError, match="SECRET_KEY"):
        Settings(MLSP_ENV="production").require_web_secrets()


def test_production_accepts_real_secret():
    settings = Settings(MLSP_ENV="production", SECRET_KEY="x" * 40)
    assert settings.jwt_secret_key == "x" * 40


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


def test_json_body_over_limit_is_413():
    from web import create_app

    small = create_app(Settings(MAX_BODY_MB=0.01)).test_client()
    resp = small.post("/api/v1/auth/login", json={"email": "a@b.co", "password": "x" * 20_000})
    assert resp.status_code == 413
    assert resp.json["error"]["code"] == "payload_too_large"


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
        root = Path(__file__).resolve().parents[2]
        subprocess.run(
            [sys.executable, "-m", "alembic", "-c", "migrations/alembic.ini", "upgrade", "head"],
            cwd=root, env=env, check=True, capture_output=True,
        )  # fmt: skip
        with create_engine(url.set(database=name)).connect() as conn:
            tables = set(conn.execute(text("SELECT tablename FROM pg_tables")).scalars())
        assert {"users", "api_keys", "models", "jobs", "alembic_version"} <= tables
    finally:
        drop_test_database(url, name)
        admin.dispose()


def test_nul_characters_are_422_not_500(client):
    """PostgreSQL cannot store U+0000; schemathesis found it reaching the database as a 500."""
    for path, body in (
        ("/api/v1/auth/login", '{"email": "a\\u0000@b.co", "password": "whatever-123"}'),
        ("/api/v1/auth/register", '{"email": "a@b.co", "password": "pass\\u0000word-123"}'),
    ):
        resp = client.post(path, data=body, content_type="application/json")
        assert resp.status_code == 422, resp.json
        assert resp.json["error"]["code"] == "invalid_input"
