"""Register, login, refresh, logout and `me` end to end on the real app, PostgreSQL and Redis."""

from __future__ import annotations

from datetime import timedelta

from flask_jwt_extended import create_access_token
from sqlalchemy import select

from shared.db import session_scope
from shared.models import User
from tests.fixtures.api import PASSWORD, register_and_login
from web import create_app


def test_register_returns_user_without_secrets(client):
    resp = client.post(
        "/api/v1/auth/register", json={"email": " Ann@Example.COM ", "password": PASSWORD}
    )
    assert resp.status_code == 201
    assert resp.json["email"] == "ann@example.com"
    assert resp.json["is_admin"] is False
    assert "password" not in str(resp.json)
    with session_scope() as s:
        stored = s.scalar(select(User.password_hash).where(User.email == "ann@example.com"))
    assert stored.startswith("$argon2id$")


def test_duplicate_email_is_case_insensitive(client):
    client.post("/api/v1/auth/register", json={"email": "bob@example.com", "password": PASSWORD})
    resp = client.post(
        "/api/v1/auth/register", json={"email": "BOB@example.com", "password": PASSWORD}
    )
    assert resp.status_code == 409
    assert resp.json["error"]["code"] == "email_taken"


def test_short_password_and_bad_email_are_422(client):
    short = client.post(
        "/api/v1/auth/register", json={"email": "c@example.com", "password": "short"}
    )
    assert short.status_code == 422
    assert short.json["error"]["details"]["errors"][0]["loc"] == "password"
    assert (
        client.post(
            "/api/v1/auth/register", json={"email": "nope", "password": PASSWORD}
        ).status_code
        == 422
    )


def test_long_password_round_trips(client):
    password = "p" * 100
    client.post("/api/v1/auth/register", json={"email": "long@example.com", "password": password})
    ok = client.post("/api/v1/auth/login", json={"email": "long@example.com", "password": password})
    assert ok.status_code == 200
    # Past bcrypt's 72 bytes the tail still matters.
    bad = client.post(
        "/api/v1/auth/login", json={"email": "long@example.com", "password": "p" * 99 + "q"}
    )
    assert bad.status_code == 401


def test_wrong_password_and_unknown_email_answer_alike(client, user):
    wrong = client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": "wrong-password"}
    )
    unknown = client.post(
        "/api/v1/auth/login", json={"email": "ghost@example.com", "password": "x" * 12}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json == unknown.json
    assert wrong.headers["WWW-Authenticate"] == "Bearer"


def test_me_with_token(client, user):
    resp = client.get("/api/v1/auth/me", headers=user.headers)
    assert resp.status_code == 200
    assert resp.json["email"] == user.email


def test_missing_and_garbage_credentials_are_401(client):
    assert client.get("/api/v1/auth/me").status_code == 401
    resp = client.get("/api/v1/auth/me", headers={"Authorization": "Bearer garbage"})
    assert resp.status_code == 401
    assert resp.json["error"]["code"] == "unauthorized"


def test_expired_access_token_is_401(app, client, user):
    with app.app_context():
        token = create_access_token(identity=user.id, expires_delta=timedelta(seconds=-1))
    resp = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
    assert "expired" in resp.json["error"]["message"]


def test_refresh_rotates_and_logout_revokes_across_processes(client, user):
    """Two app instances share only Redis and PostgreSQL, like two web server processes."""
    other = create_app().test_client()
    refreshed = other.post(
        "/api/v1/auth/refresh", headers={"Authorization": f"Bearer {user.refresh_token}"}
    )
    assert refreshed.status_code == 200
    new_access = refreshed.json["access_token"]
    headers = {"Authorization": f"Bearer {new_access}"}
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    assert other.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 401
    # Logout also killed the refresh token issued with that access token.
    again = client.post(
        "/api/v1/auth/refresh",
        headers={"Authorization": f"Bearer {refreshed.json['refresh_token']}"},
    )
    assert again.status_code == 401
    # The used refresh token is dead on every instance (its reuse revokes its family:
    # tests/security/test_auth_refresh.py).
    replay = client.post(
        "/api/v1/auth/refresh", headers={"Authorization": f"Bearer {user.refresh_token}"}
    )
    assert replay.status_code == 401


def test_access_token_cannot_refresh(client, user):
    assert client.post("/api/v1/auth/refresh", headers=user.headers).status_code == 401


def test_second_user_can_register_after_first(client):
    a = register_and_login(client)
    b = register_and_login(client)
    assert a.id != b.id
