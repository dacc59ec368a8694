"""What the auth tests do besides calling the API: make an account an administrator."""

from __future__ import annotations

import uuid

from sqlalchemy import update

from shared.db import session_scope
from shared.models import User


def make_admin(account) -> None:
    with session_scope() as s:
        s.execute(update(User).where(User.id == uuid.UUID(account.id)).values(is_admin=True))
