"""API keys of the logged-in user: keys are for machines, only a password login manages them."""

from __future__ import annotations

import uuid

from flask import Blueprint, request
from spectree import Response
from sqlalchemy import select

from shared.models import ApiKey
from shared.schemas.auth import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyOut, ApiKeyPatch
from shared.schemas.common import ErrorResponse
from web.auth.guard import current, login_required
from web.auth.keys import create_key
from web.epoch import bump as bump_epoch
from web.extensions import db
from web.openapi import AUTH, PROTECTED_ERRORS, errors, spec
from web.scoping import get_owned

bp = Blueprint("api_keys", __name__)
_ERRORS = errors(*PROTECTED_ERRORS)


@bp.post("")
@login_required(allow_api_key=False)
@spec.validate(
    json=ApiKeyCreate,
    resp=Response(HTTP_201=ApiKeyCreated, **_ERRORS),
    tags=["api-keys"],
    security=AUTH,
)
def create():
    """Create a key; the secret is in this answer only."""
    body: ApiKeyCreate = request.context.json
    row, key = create_key(current(), body.name, body.expires_in_days)
    return ApiKeyCreated(**ApiKeyOut.model_validate(row).model_dump(), key=key), 201


@bp.get("")
@login_required(allow_api_key=False)
@spec.validate(resp=Response(HTTP_200=ApiKeyList, **_ERRORS), tags=["api-keys"], security=AUTH)
def list_keys():
    """The caller's keys, newest first, without secrets."""
    rows = db.session.scalars(
        select(ApiKey).where(ApiKey.user_id == current().id).order_by(ApiKey.created_at.desc())
    )
    return ApiKeyList(items=[ApiKeyOut.model_validate(r) for r in rows])


@bp.get("/<uuid:key_id>")
@login_required(allow_api_key=False)
@spec.validate(
    resp=Response(HTTP_200=ApiKeyOut, HTTP_404=ErrorResponse, **_ERRORS),
    tags=["api-keys"],
    security=AUTH,
)
def get(key_id: uuid.UUID):
    """One key, with `last_used_at`."""
    return ApiKeyOut.model_validate(get_owned(ApiKey, key_id, "API key"))


@bp.patch("/<uuid:key_id>")
@login_required(allow_api_key=False)
@spec.validate(
    json=ApiKeyPatch,
    resp=Response(HTTP_200=ApiKeyOut, HTTP_404=ErrorResponse, **_ERRORS),
    tags=["api-keys"],
    security=AUTH,
)
def patch(key_id: uuid.UUID):
    """Rename, deactivate or reactivate a key (takes effect on the next request)."""
    return ApiKeyOut.model_validate(update_key(key_id, request.context.json))


def update_key(key_id: uuid.UUID, body: ApiKeyPatch) -> ApiKey:
    """Apply a patch to the caller's key: the API's and the web pages'."""
    row = get_owned(ApiKey, key_id, "API key")
    for field, value in body.model_dump(exclude_none=True).items():
        setattr(row, field, value)
    db.session.commit()
    bump_epoch()  # a deactivated key stops working in every process at once
    return row


@bp.delete("/<uuid:key_id>")
@login_required(allow_api_key=False)
@spec.validate(
    resp=Response("HTTP_204", HTTP_404=ErrorResponse, **_ERRORS), tags=["api-keys"], security=AUTH
)
def delete(key_id: uuid.UUID):
    """Delete a key: it stops working at once."""
    delete_key(key_id)
    return "", 204


def delete_key(key_id: uuid.UUID) -> None:
    """Delete the caller's key; every process refuses it from the next request."""
    db.session.delete(get_owned(ApiKey, key_id, "API key"))
    db.session.commit()
    bump_epoch()
