"""The web pages' guarantees that need no browser: session cookie flags and lifetime, CSRF on
every form (and none on the JSON API), the separation of page sessions from API credentials,
one user never seeing another's objects, the administration's gate."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from shared.config import Settings
from shared.jobs import Job
from shared.models import ApiKey
from tests.fixtures.api import PASSWORD, register_and_login
from tests.ui.pages import csrf_token, insert_jobs, ready_model, sign_up, user_id
from web import create_app
from web.extensions import db


def test_session_cookie_flags(browser_client: FlaskClient) -> None:
    sign_up(browser_client)
    cookie = browser_client.get_cookie("mlsp_session")
    assert cookie is not None and cookie.http_only and cookie.secure
    assert cookie.same_site == "Lax"


def test_session_cookie_not_secure_in_development() -> None:
    client = create_app(Settings(MLSP_ENV="development")).test_client()
    header = client.get("/login").headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header


def test_forms_without_token_are_refused(browser_client: FlaskClient, app: Flask) -> None:
    resp = browser_client.post("/register", data={"email": "x@example.com", "password": PASSWORD})
    assert resp.status_code == 400 and "Form refused" in resp.get_data(as_text=True)
    email = sign_up(browser_client)
    refused = browser_client.post("/keys", data={"name": "k", "expires_in_days": "30"})
    assert refused.status_code == 400
    wrong = browser_client.post("/keys", data={"name": "k", "csrf_token": "forged"})
    assert wrong.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiKey)) == 0
    # The header htmx sends is accepted like the form field.
    token = csrf_token(browser_client, "/keys")
    ok = browser_client.post(
        "/keys", data={"name": "k", "expires_in_days": "30"}, headers={"X-CSRFToken": token}
    )
    assert ok.status_code == 201 and "mlp_" in ok.get_data(as_text=True)
    assert browser_client.post("/logout").status_code == 400  # a forged sign-out link too
    assert user_id(app, email) is not None


def test_json_api_takes_no_csrf_and_no_cookie(browser_client: FlaskClient) -> None:
    sign_up(browser_client)  # the client now sends a valid page session cookie
    me = browser_client.get("/api/v1/auth/me")
    assert me.status_code == 401  # the cookie is not an API credential
    assert "Set-Cookie" not in me.headers
    account = register_and_login(browser_client)  # a JSON POST without any CSRF token
    assert browser_client.get("/api/v1/auth/me", headers=account.headers).status_code == 200


def test_api_credentials_do_not_open_pages(client: FlaskClient) -> None:
    account = register_and_login(client)
    key = client.post("/api/v1/api-keys", json={"name": "k"}, headers=account.headers).json["key"]
    for headers in (account.headers, {"X-API-Key": key}):
        resp = client.get("/models", headers=headers)
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")


def test_logout_ends_the_session_server_side(browser_client: FlaskClient, app: Flask) -> None:
    sign_up(browser_client)
    stolen = browser_client.get_cookie("mlsp_session").value
    token = csrf_token(browser_client, "/models")
    assert browser_client.post("/logout", data={"csrf_token": token}).status_code == 302
    replay = app.test_client()
    replay.set_cookie("mlsp_session", stolen, domain="localhost")
    assert replay.get("/models").status_code == 302


def test_wrong_password_and_disabled_account(browser_client: FlaskClient, app: Flask) -> None:
    email = sign_up(browser_client)
    other = app.test_client()
    token = csrf_token(other, "/login")
    wrong = other.post("/login", data={"email": email, "password": "nope", "csrf_token": token})
    assert wrong.status_code == 401 and "Invalid email or password" in wrong.get_data(True)
    with app.app_context():
        from web.auth.admin import set_active

        set_active(user_id(app, email), False)
    # The open session ends with the account, and signing in again is refused.
    assert browser_client.get("/models").status_code == 302
    token = csrf_token(other, "/login")
    again = other.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert again.status_code == 401


def test_one_user_never_sees_anothers_objects(app: Flask) -> None:
    alice, bob = app.test_client(), app.test_client()
    alice_id = user_id(app, sign_up(alice))
    sign_up(bob)
    model_id = ready_model(app, alice_id, name="secret-model")
    insert_jobs(app, model_id, alice_id, 3)
    with app.app_context():
        job_id = db.session.scalar(select(Job.id).limit(1))
    assert "secret-model" in alice.get("/models").get_data(as_text=True)
    assert alice.get(f"/jobs/{job_id}").status_code == 200
    for path in (
        "/models/secret-model",
        "/models/secret-model/analytics",
        "/models/secret-model/try",
        "/models/secret-model/versions/1/delete",
        "/models/secret-model/versions/1/status",
        f"/jobs/{job_id}",
        f"/jobs/{job_id}/row",
    ):
        resp = bob.get(path)
        assert resp.status_code == 404, path
        assert "secret-model" not in resp.get_data(as_text=True)
    token = csrf_token(bob, "/models")
    assert bob.post(f"/jobs/{job_id}/cancel", data={"csrf_token": token}).status_code == 404
    for path in ("/models", "/jobs"):
        body = bob.get(path).get_data(as_text=True)
        assert "secret-model" not in body and str(job_id)[:8] not in body, path
    assert "No jobs match" in bob.get("/jobs?model=secret-model").get_data(as_text=True)


def test_admin_pages(app: Flask) -> None:
    admin, member = app.test_client(), app.test_client()
    admin_id = user_id(app, sign_up(admin))
    member_email = sign_up(member)
    assert admin.get("/admin/").status_code == 403  # not an administrator yet
    with app.app_context():
        db.session.execute(
            db.text("UPDATE users SET is_admin = true WHERE id = :i"), {"i": admin_id}
        )
        db.session.commit()
    listing = admin.get("/admin/").get_data(as_text=True)
    assert member_email in listing
    token = csrf_token(admin, "/admin/")
    target = user_id(app, member_email)
    resp = admin.post(
        f"/admin/users/{target}/active", data={"active": "false", "csrf_token": token}
    )
    assert resp.status_code == 303
    assert member.get("/models").status_code == 302  # signed out with the account
    assert (
        admin.post(f"/admin/users/{uuid.uuid4()}/active", data={"csrf_token": token}).status_code
        == 404
    )


def test_an_outage_is_a_page_not_json(app: Flask, browser_client: FlaskClient) -> None:
    """A page whose database is unreachable answers the API's 503 (and Retry-After) as HTML."""
    sign_up(browser_client)
    cookie = browser_client.get_cookie("mlsp_session").value
    broken = create_app(
        Settings(DATABASE_URL="postgresql://postgres@127.0.0.1:1/none", DB_CONNECT_TIMEOUT_S=1)
    )
    client = broken.test_client()
    client.set_cookie("mlsp_session", cookie, domain="localhost")
    resp = client.get("/models")
    assert resp.status_code == 503 and resp.mimetype == "text/html"
    assert resp.headers["Retry-After"] and "unavailable" in resp.get_data(as_text=True)


@pytest.mark.parametrize(
    ("target", "landing"),
    [
        ("/jobs?status=failed", "/jobs?status=failed"),
        ("//evil.example", "/models"),
        ("/\\evil.example", "/models"),
        ("https://evil.example/", "/models"),
    ],
)
def test_sign_in_returns_to_this_site_only(app: Flask, target: str, landing: str) -> None:
    email = sign_up(app.test_client())
    client = app.test_client()
    token = csrf_token(client, "/login")
    resp = client.post(
        "/login",
        query_string={"next": target},
        data={"email": email, "password": PASSWORD, "csrf_token": token},
    )
    assert resp.status_code == 302 and resp.headers["Location"] == landing


def test_sign_in_has_the_apis_rate_limit() -> None:
    limited = create_app(Settings(RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH="2/minute"))
    client = limited.test_client()
    token = csrf_token(client, "/login")
    form = {"email": "nobody@example.com", "password": "wrong", "csrf_token": token}
    assert [client.post("/login", data=form).status_code for _ in range(3)] == [401, 401, 429]
    assert client.get("/login").status_code == 200  # only the form posts are limited


def test_rename_a_key(app: Flask, browser_client: FlaskClient) -> None:
    sign_up(browser_client)
    token = csrf_token(browser_client, "/keys")
    created = browser_client.post(
        "/keys", data={"name": "old-name", "expires_in_days": "7", "csrf_token": token}
    )
    assert created.status_code == 201
    with app.app_context():
        key_id = db.session.scalar(select(ApiKey.id))
    renamed = browser_client.post(
        f"/keys/{key_id}/rename", data={"name": "new-name", "csrf_token": token}
    )
    assert renamed.status_code == 303
    listing = browser_client.get("/keys").get_data(as_text=True)
    assert "new-name" in listing and "old-name" not in listing and "mlp_" in listing  # prefix
    empty = browser_client.post(f"/keys/{key_id}/rename", data={"name": "", "csrf_token": token})
    assert empty.status_code == 303
    assert "Not renamed" in browser_client.get("/keys").get_data(as_text=True)
