"""The per-process cache of resolved API keys: a revoked key or a disabled account is refused on
the very next request in every process."""

from __future__ import annotations

from tests.fixtures.api import create_api_key
from tests.web.auth.calls import make_admin
from web import create_app


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
    make_admin(user)
    admin = create_app().test_client()
    resp = admin.patch(
        f"/api/v1/admin/users/{other_user.id}", json={"is_active": False}, headers=user.headers
    )
    assert resp.status_code == 200
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 403
