"""The administrators' endpoints: list accounts, disable one."""

from __future__ import annotations

import uuid

from tests.web.auth.calls import make_admin


def test_admin_lists_and_disables_users(client, user, other_user):
    assert client.get("/api/v1/admin/users", headers=other_user.headers).status_code == 403
    make_admin(user)
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
