"""The authentication guard: valid credentials of a disabled account are refused (403)."""

from __future__ import annotations

import uuid

from sqlalchemy import update

from shared.db import session_scope
from shared.models import User
from tests.fixtures.api import PASSWORD, create_api_key


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
