"""API keys: created once, listed by prefix, revoked, expired, never managing keys themselves."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from shared.db import session_scope
from shared.models import ApiKey
from tests.fixtures.api import create_api_key


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
