"""Administration: list users, disable or re-enable an account."""

from __future__ import annotations

import uuid

from flask import Blueprint, request
from spectree import Response

from shared.errors import NotFound
from shared.models import User
from shared.schemas.auth import UserList, UserOut, UserPatch
from shared.schemas.common import ErrorResponse, PageQuery
from web.auth.guard import admin_required
from web.epoch import bump as bump_epoch
from web.extensions import db
from web.openapi import AUTH, PROTECTED_ERRORS, errors, spec
from web.pagination import page_of

bp = Blueprint("admin", __name__)
_ERRORS = errors(*PROTECTED_ERRORS)


@bp.get("/users")
@admin_required
@spec.validate(
    query=PageQuery, resp=Response(HTTP_200=UserList, **_ERRORS), tags=["admin"], security=AUTH
)
def list_users():
    """All users, newest first."""
    q: PageQuery = request.context.query
    rows, total = page_of(User, [], [User.created_at.desc()], q)
    items = [UserOut.model_validate(u) for u in rows]
    return UserList(items=items, page=q.page, per_page=q.per_page, total=total)


@bp.patch("/users/<uuid:user_id>")
@admin_required
@spec.validate(
    json=UserPatch,
    resp=Response(HTTP_200=UserOut, HTTP_404=ErrorResponse, **_ERRORS),
    tags=["admin"],
    security=AUTH,
)
def patch_user(user_id: uuid.UUID):
    """Disable (or re-enable) an account: its tokens and keys are refused from the next request."""
    return UserOut.model_validate(set_active(user_id, request.context.json.is_active))


def set_active(user_id: uuid.UUID, is_active: bool) -> User:
    """Disable or re-enable an account (404 for an unknown id): the API's and /admin's."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("User not found")
    user.is_active = is_active
    db.session.commit()
    bump_epoch()  # cached API keys of a disabled account are dropped everywhere
    return user
