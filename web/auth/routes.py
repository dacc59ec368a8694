"""Register, login, refresh (rotating), logout and who-am-I."""

from __future__ import annotations

import uuid

from flask import Blueprint, request
from flask_jwt_extended import get_jwt, get_jwt_identity, verify_jwt_in_request
from spectree import Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from shared.errors import Conflict, Unauthorized
from shared.models import User
from shared.schemas.auth import AccessToken, Credentials, LoginIn, TokenPair, UserOut
from shared.schemas.common import ErrorResponse
from web.auth.guard import current, login_required
from web.auth.passwords import hash_password, needs_rehash, verify_password
from web.auth.tokens import issue_tokens, refuse_reuse, revoke, revoke_session
from web.extensions import db
from web.limits import auth_limit, limit
from web.openapi import AUTH, PROTECTED_ERRORS, errors, spec

bp = Blueprint("auth", __name__)


@bp.post("/register")
@limit(auth_limit)
@spec.validate(json=Credentials, resp=Response(HTTP_201=UserOut, **errors(400, 409)), tags=["auth"])
def register():
    """Create an account (email is case-insensitive and unique)."""
    return UserOut.model_validate(create_user(request.context.json)), 201


def create_user(body: Credentials) -> User:
    """A new account (409 email_taken when the email is in use): the API's and the web pages'."""
    user = User(email=body.email, password_hash=hash_password(body.password))
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("An account with this email already exists", code="email_taken") from None
    return user


def check_login(body: LoginIn) -> User:
    """The user these credentials belong to (401 otherwise); the API's and the web pages'."""
    email = body.email.strip().lower()
    user = db.session.scalar(select(User).where(User.email == email))
    # Same answer (and the same Argon2 cost) for an unknown email and a wrong password.
    if not verify_password(user.password_hash if user else None, body.password) or user is None:
        raise Unauthorized("Invalid email or password", code="invalid_credentials")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(body.password)
        db.session.commit()
    return user


@bp.post("/login")
@limit(auth_limit)
@spec.validate(json=LoginIn, resp=Response(HTTP_200=TokenPair, **errors(400, 401)), tags=["auth"])
def login():
    """Exchange email + password for an access and a refresh token."""
    user = check_login(request.context.json)
    if not user.is_active:
        raise Unauthorized("Invalid email or password", code="invalid_credentials")
    return TokenPair(**issue_tokens(user))


@bp.post("/refresh")
@spec.validate(
    resp=Response(HTTP_200=AccessToken, **errors(400, 401)), tags=["auth"], security=AUTH
)
def refresh():
    """Trade a refresh token for a new access token and a new refresh token (rotation)."""
    verify_jwt_in_request(refresh=True)  # a revoked one ends its family (web/auth/tokens.py)
    claims = get_jwt()
    # The used refresh token dies now; presenting it again is refused and ends the family.
    if not revoke(claims["jti"], claims["exp"]):  # two requests raced with the same token
        refuse_reuse(claims)
        raise Unauthorized("Refresh token already used", code="token_revoked")
    user = db.session.get(User, _uuid(get_jwt_identity()))
    if user is None or not user.is_active:
        raise Unauthorized("Unknown or disabled user")
    return AccessToken(**issue_tokens(user, family=claims.get("fam")))


@bp.post("/logout")
@login_required(allow_api_key=False)
@spec.validate(resp=Response("HTTP_204", **errors(*PROTECTED_ERRORS)), tags=["auth"], security=AUTH)
def logout():
    """Revoke this access token and the refresh token issued with it."""
    revoke_session(get_jwt())
    return "", 204


@bp.get("/me")
@login_required()
@spec.validate(
    resp=Response(HTTP_200=UserOut, HTTP_401=ErrorResponse), tags=["auth"], security=AUTH
)
def me():
    """The authenticated user."""
    return UserOut.model_validate(current())


def _uuid(value: str) -> uuid.UUID:

    try:
        return uuid.UUID(value)
    except ValueError:
        raise Unauthorized("Invalid token subject") from None
