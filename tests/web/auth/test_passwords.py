"""Password hashes: Argon2id, upgraded at login when the parameters change."""

from __future__ import annotations

from sqlalchemy import select

from shared.db import session_scope
from shared.models import User
from tests.fixtures.api import PASSWORD


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
