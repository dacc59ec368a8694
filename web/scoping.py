"""Ownership scoping: every lookup by id is filtered by the caller, and misses are 404."""

from __future__ import annotations

import uuid
from typing import TypeVar

from sqlalchemy import select

from shared.errors import NotFound
from web.auth.guard import current
from web.extensions import db

T = TypeVar("T")


def get_owned(model: type[T], ident: uuid.UUID, what: str, *, lock: bool = False) -> T:
    """The caller's row with this id; someone else's row is indistinguishable from none."""
    owner_column = model.owner_id if hasattr(model, "owner_id") else model.user_id  # type: ignore[attr-defined]
    query = select(model).where(model.id == ident, owner_column == current().id)  # type: ignore[attr-defined]
    if hasattr(model, "deleted_at"):
        query = query.where(model.deleted_at.is_(None))  # type: ignore[attr-defined]
    if lock:
        query = query.with_for_update()
    row = db.session.scalar(query)
    if row is None:
        raise NotFound(f"{what} not found")
    return row
