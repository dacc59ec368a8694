"""Helpers of the pages' tests that use Flask's test client: sign-ups through the real forms,
CSRF tokens read from the pages, and rows written directly where a worker is not the point."""

from __future__ import annotations

import re
import secrets
import uuid

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from shared.models import MLModel
from tests.fixtures.api import PASSWORD
from web.extensions import db

_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str) -> str:
    """The token of the first form on a page (each page of a session carries the same one)."""
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    return _TOKEN.search(page.get_data(as_text=True)).group(1)


def sign_up(client: FlaskClient, email: str | None = None) -> str:
    """A new account through /register; the client holds its session cookie after."""
    email = email or f"page-{secrets.token_hex(4)}@example.com"
    token = csrf_token(client, "/register")
    resp = client.post(
        "/register", data={"email": email, "password": PASSWORD, "csrf_token": token}
    )
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return email


def user_id(app: Flask, email: str) -> uuid.UUID:
    with app.app_context():
        return db.session.scalar(text("SELECT id FROM users WHERE email = :e"), {"e": email})


def ready_model(app: Flask, owner: uuid.UUID, name: str = "iris", version: int = 1) -> uuid.UUID:
    """A model row as validation leaves it (the pages read rows; nothing runs it here)."""
    with app.app_context():
        model = MLModel(
            owner_id=owner,
            name=name,
            version=version,
            status="ready",
            format="joblib",
            framework="sklearn",
            artifact_key=f"{uuid.uuid4()}.joblib",
            sha256="0" * 64,
            size_bytes=1000,
            runtime="sklearn",
            input_schema={
                "n_features": 2,
                "feature_names": ["a", "b"],
                "columns": [
                    {"name": "a", "dtype": "number", "nullable": False},
                    {"name": "b", "dtype": "string", "nullable": True, "categories": ["x", "y"]},
                ],
            },
            output_schema={"task": "classification", "classes": [0, 1], "has_proba": True},
        )
        db.session.add(model)
        db.session.commit()
        return model.id


def insert_jobs(app: Flask, model_id: uuid.UUID, owner: uuid.UUID, count: int) -> None:
    """`count` finished, failed and queued jobs over the last days, in one statement."""
    with app.app_context():
        db.session.execute(
            text(
                """
                INSERT INTO jobs (id, model_id, model_version, owner_id, status, n_rows,
                                  error_code, queue_ms, inference_ms, total_ms, cache_hit,
                                  created_at, finished_at)
                SELECT gen_random_uuid(), :model, 1, :owner,
                       (ARRAY['succeeded', 'succeeded', 'failed', 'queued'])[1 + i % 4], 1,
                       CASE WHEN i % 4 = 2 THEN 'prediction_failed' END,
                       1 + i % 7, 0.5 + i % 3, 2 + i % 11, i % 2 = 0,
                       now() - make_interval(secs => i * 30), now() - make_interval(secs => i * 30)
                FROM generate_series(1, :count) AS i
                """
            ),
            {"model": model_id, "owner": owner, "count": count},
        )
        db.session.commit()
