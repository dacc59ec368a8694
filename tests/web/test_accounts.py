"""Accounts end to end on the real app, PostgreSQL and Redis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from flask_jwt_extended import create_access_token
from sqlalchemy import select, update

from shared.config import Settings
from shared.db import session_scope
from shared.models import ApiKey, User
from tests.fixtures.api import PASSWORD, create_api_key, register_and_login
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


def test_api_key_lifecycle(client, user):
    created = create_api_key(client, user, expires_in_days=30)
    key = created["key"]
    assert key.startswith("mlp_") and len(key) >= 4 + 43
    assert created["prefix"] == key[:12]
    for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    listed = client.get("/api/v1/api-keys", headers=user.headers).json["items"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    shown = client.get(f"/api/v1/api-keys/{created['id']}", headers=user.headers).json
    assert shown["last_used_at"] is not None
    with session_scope() as s:
        row = s.get(ApiKey, uuid.UUID(created["id"]))
        assert key not in (row.key_hash, row.prefix)
    off = client.patch(
        f"/api/v1/api-keys/{created['id']}", json={"is_active": False}, headers=user.headers
    )
    assert off.status_code == 200 and off.json["is_active"] is False
    assert client.get("/api/v1/auth/me", headers={"X-API-Key": key}).status_code == 401


def test_deleted_key_stops_at_once(client, user):
    created = create_api_key(client, user)
    assert (
        client.delete(f"/api/v1/api-keys/{created['id']}", headers=user.headers).status_code == 204
    )
    assert client.get("/api/v1/auth/me", headers={"X-API-Key": created["key"]}).status_code == 401


def test_expired_key_is_refused(client, user):
    created = create_api_key(client, user)
    with session_scope() as s:
        s.execute(
            update(ApiKey)
            .where(ApiKey.id == uuid.UUID(created["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert client.get("/api/v1/auth/me", headers={"X-API-Key": created["key"]}).status_code == 401


def test_key_expiry_bounds(client, user):
    for days in (0, 366):
        resp = client.post(
            "/api/v1/api-keys", json={"name": "x", "expires_in_days": days}, headers=user.headers
        )
        assert resp.status_code == 422


def test_key_cannot_manage_keys(client, user):
    key = create_api_key(client, user)["key"]
    assert client.get("/api/v1/api-keys", headers={"X-API-Key": key}).status_code == 403
    assert (
        client.post("/api/v1/api-keys", json={"name": "x"}, headers={"X-API-Key": key}).status_code
        == 403
    )


def test_disabled_user_is_refused_with_valid_credentials(client, user):
    key = create_api_key(client, user)["key"]
    with session_scope() as s:
        s.execute(update(User).where(User.id == uuid.UUID(user.id)).values(is_active=False))
    for headers in (user.headers, {"X-API-Key": key}):
        resp = client.get("/api/v1/auth/me", headers=headers)
        assert resp.status_code == 403
        assert resp.json["error"]["code"] == "account_disabled"
    login = client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert login.status_code == 401


def _make_admin(account) -> None:
    with session_scope() as s:
        s.execute(update(User).where(User.id == uuid.UUID(account.id)).values(is_admin=True))


def test_admin_lists_and_disables_users(client, user, other_user):
    assert client.get("/api/v1/admin/users", headers=other_user.headers).status_code == 403
    _make_admin(user)
    listed = client.get("/api/v1/admin/users?per_page=10", headers=user.headers).json
    assert listed["total"] == 2
    resp = client.patch(
        f"/api/v1/admin/users/{other_user.id}", json={"is_active": False}, headers=user.headers
    )
    assert resp.status_code == 200 and resp.json["is_active"] is False
    assert client.get("/api/v1/auth/me", headers=other_user.headers).status_code == 403
    missing = client.patch(
        f"/api/v1/admin/users/{uuid.uuid4()}", json={"is_active": True}, headers=user.headers
    )
    assert missing.status_code == 404


def test_create_admin_cli(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["create-admin", "root@example.com"], env={"MLSP_ADMIN_PASSWORD": PASSWORD}
    )
    assert result.exit_code == 0, result.output
    with session_scope() as s:
        assert s.scalar(select(User.is_admin).where(User.email == "root@example.com")) is True


def test_login_rate_limit_trips_with_retry_after():
    limited = create_app(
        Settings(RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH="3/minute")
    ).test_client()
    body = {"email": "who@example.com", "password": "wrong-password"}
    codes = [limited.post("/api/v1/auth/login", json=body).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    resp = limited.post("/api/v1/auth/login", json=body)
    assert resp.status_code == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.headers["X-RateLimit-Limit"] == "3"
    assert resp.json["error"]["code"] == "rate_limited"


def test_limits_off_in_one_app_while_on_in_another():
    """The limiter object is shared by every app in a process: an app with RATE_LIMIT_ENABLED
    off neither counts nor answers 429 (no X-RateLimit headers: the limiter never ran), while
    an app with them on in the same process still trips."""
    limited = create_app(
        Settings(RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH="2/minute")
    ).test_client()
    free = create_app(Settings(RATE_LIMIT_ENABLED=False, RATE_LIMIT_AUTH="2/minute")).test_client()
    body = {"email": "both@example.com", "password": "wrong-password"}
    answers = [app.post("/api/v1/auth/login", json=body) for app in (free, limited) * 3]
    codes = [r.status_code for r in answers]
    assert codes == [401, 401, 401, 401, 401, 429]
    assert not any("X-RateLimit-Limit" in r.headers for r in answers[0::2])
    assert all(r.headers["X-RateLimit-Limit"] == "2" for r in answers[1::2])


def test_second_user_can_register_after_first(client):
    a = register_and_login(client)
    b = register_and_login(client)
    assert a.id != b.id


def test_cached_key_is_revoked_at_once_in_every_process(client, user):
    """A key resolved once is served from each process's cache; revoking it elsewhere still
    takes effect on the very next request (the shared epoch invalidates the cache)."""
    other = create_app().test_client()
    created = create_api_key(client, user)
    headers = {"X-API-Key": created["key"]}
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200  # now cached
    off = other.patch(
        f"/api/v1/api-keys/{created['id']}", json={"is_active": False}, headers=user.headers
    )
    assert off.status_code == 200
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 401


def test_cached_key_of_a_disabled_account_is_refused(client, user, other_user):
    created = create_api_key(client, other_user)
    headers = {"X-API-Key": created["key"]}
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200  # now cached
    _make_admin(user)
    admin = create_app().test_client()
    resp = admin.patch(
        f"/api/v1/admin/users/{other_user.id}", json={"is_active": False}, headers=user.headers
    )
    assert resp.status_code == 200
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 403


def test_password_rehashed_on_login_when_parameters_change(client):
    """A hash made with weaker Argon2 parameters is replaced at the next successful login."""
    from argon2 import PasswordHasher

    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with session_scope() as s:
        s.add(User(email="old@example.com", password_hash=old))
    resp = client.post(
        "/api/v1/auth/login", json={"email": "old@example.com", "password": PASSWORD}
    )
    assert resp.status_code == 200
    with session_scope() as s:
        new = s.scalar(select(User.password_hash).where(User.email == "old@example.com"))
    assert new != old
    assert new.startswith("$argon2id$") and "m=8192," not in new
