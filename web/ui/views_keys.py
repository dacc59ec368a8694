"""API keys: create (the secret shown once, with a copy button), list, rename, revoke."""

from __future__ import annotations

import uuid

from flask import flash, redirect, render_template, url_for
from sqlalchemy import select

from shared.models import ApiKey
from shared.schemas.auth import ApiKeyPatch
from web.auth.api_keys import delete_key, update_key
from web.auth.guard import current
from web.auth.keys import create_key
from web.extensions import db
from web.ui.blueprint import bp
from web.ui.forms import ActionForm, KeyCreateForm, KeyRenameForm
from web.ui.sessions import current_user_id, page_login_required

MAX_KEYS_LISTED = 200


def _render(create: KeyCreateForm, new_key: str | None = None, status: int = 200):
    rows = db.session.scalars(
        select(ApiKey)
        .where(ApiKey.user_id == current_user_id())
        .order_by(ApiKey.created_at.desc())
        .limit(MAX_KEYS_LISTED)
    )
    return render_template(
        "ui/keys.html",
        keys=list(rows),
        form=create,
        rename=KeyRenameForm(),
        action=ActionForm(),
        new_key=new_key,
    ), status


@bp.get("/keys")
@page_login_required
def keys():
    return _render(KeyCreateForm())


@bp.post("/keys")
@page_login_required
def create():
    form = KeyCreateForm()
    if not form.validate_on_submit():
        return _render(form, status=422)
    _, key = create_key(current(), form.name.data, form.expires_in_days.data)
    # The secret is in this answer only: rendered here, never stored or redirected with.
    return _render(KeyCreateForm(formdata=None), new_key=key, status=201)


@bp.post("/keys/<uuid:key_id>/rename")
@page_login_required
def rename(key_id: uuid.UUID):
    form = KeyRenameForm()
    if form.validate_on_submit():
        update_key(key_id, ApiKeyPatch(name=form.name.data))
        flash("Key renamed.")
    else:
        flash("Not renamed: a key's name is 1 to 100 characters.")
    return redirect(url_for("ui.keys"), 303)


@bp.post("/keys/<uuid:key_id>/revoke")
@page_login_required
def revoke(key_id: uuid.UUID):
    """Revoking deletes the key, as `DELETE /api-keys/{id}` does: it stops working at once."""
    delete_key(key_id)
    flash("Key revoked.")
    return redirect(url_for("ui.keys"), 303)
