"""/admin: every account, newest first, with disable and enable (administrators only)."""

from __future__ import annotations

import uuid

from flask import flash, g, redirect, render_template, request, url_for

from shared.errors import Conflict, Forbidden
from shared.models import User
from shared.schemas.common import PageQuery
from web.auth.admin import set_active
from web.pagination import page_of
from web.ui import queries
from web.ui.blueprint import admin_bp
from web.ui.forms import ActionForm
from web.ui.sessions import page_login_required
from web.ui.views_models import _page_number


def _require_admin() -> None:
    if not g.user.is_admin:
        raise Forbidden("Administrators only")


@admin_bp.get("/")
@page_login_required
def users():
    _require_admin()
    page = _page_number()
    rows, total = page_of(
        User, [], [User.created_at.desc()], PageQuery(page=page, per_page=queries.PER_PAGE)
    )
    return render_template(
        "ui/admin_users.html", page=queries.Page(rows, page, total), action=ActionForm()
    )


@admin_bp.post("/users/<uuid:user_id>/active")
@page_login_required
def set_user_active(user_id: uuid.UUID):
    _require_admin()
    if user_id == g.user.id:
        raise Conflict("You cannot disable your own account here")

    user = set_active(user_id, request.form.get("active") == "true")
    flash(f"{user.email} {'enabled' if user.is_active else 'disabled'}.")
    return redirect(url_for("ui_admin.users"), 303)
