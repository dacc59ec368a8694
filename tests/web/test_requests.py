"""The per-request hooks (web/requests.py): body checks before any handler (malformed JSON, not
JSON, over MAX_BODY_MB, NUL characters) and the request id."""

from __future__ import annotations

from shared.config import Settings


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


def test_json_body_over_limit_is_413():
    from web import create_app

    small = create_app(Settings(MAX_BODY_MB=0.01)).test_client()
    resp = small.post("/api/v1/auth/login", json={"email": "a@b.co", "password": "x" * 20_000})
    assert resp.status_code == 413
    assert resp.json["error"]["code"] == "payload_too_large"


def test_nul_characters_are_422_not_500(client):
    """PostgreSQL cannot store U+0000; schemathesis found it reaching the database as a 500."""
    for path, body in (
        ("/api/v1/auth/login", '{"email": "a\\u0000@b.co", "password": "whatever-123"}'),
        ("/api/v1/auth/register", '{"email": "a@b.co", "password": "pass\\u0000word-123"}'),
    ):
        resp = client.post(path, data=body, content_type="application/json")
        assert resp.status_code == 422, resp.json
        assert resp.json["error"]["code"] == "invalid_input"
