"""JWT sessions (flask-jwt-extended) with a Redis revocation list shared by all web processes.

A login starts a token family (the `fam` claim of every token it leads to): refresh tokens
rotate within it, and presenting a rotated (or logged-out) refresh token again revokes the whole
family, the current refresh token and its access tokens included (OAuth 2.0 Security BCP,
refresh token rotation): one of the two presenters is not the user.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token

from shared.models import User
from shared.redis_client import PREFIX
from web import extensions
from web.errors import error_response
from web.extensions import db, jwt

_REVOKED = PREFIX + "revoked:"
_REVOKED_FAMILY = PREFIX + "revoked-family:"


def issue_tokens(user: User, family: str | None = None) -> dict[str, Any]:
    """A fresh access + refresh pair in `family` (a new one at login); the access token
    remembers its refresh token's jti."""
    family = family or uuid.uuid4().hex
    refresh = create_refresh_token(identity=str(user.id), additional_claims={"fam": family})
    refresh_jti = decode_token(refresh)["jti"]
    access = create_access_token(
        identity=str(user.id), additional_claims={"rjti": refresh_jti, "fam": family}
    )
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "bearer",
        "expires_in": extensions.settings().access_token_expires_s,
    }


def revoke(jti: str, expires_at: int) -> bool:
    """Revoke a token until it would have expired anyway; False if it already was revoked."""
    ttl = max(1, int(expires_at - time.time()))
    return bool(extensions.redis().set(_REVOKED + jti, 1, nx=True, ex=ttl))


def revoke_family(family: str) -> None:
    """Every token of the family stops working. None outlives a refresh token's lifetime from
    now (none is issued in a revoked family), so neither does the mark."""
    lifetime = extensions.settings().refresh_token_expires_s
    extensions.redis().set(_REVOKED_FAMILY + family, 1, ex=lifetime)


def is_revoked(claims: Mapping[str, Any]) -> bool:
    """The token itself or its family was revoked (one round trip)."""
    keys = [_REVOKED + claims["jti"]]
    if family := claims.get("fam"):
        keys.append(_REVOKED_FAMILY + family)
    return bool(extensions.redis().exists(*keys))


def revoke_session(access_claims: dict[str, Any]) -> None:
    """Logout: the access token, the refresh token issued with it and the rest of their family
    stop working at once."""
    revoke(access_claims["jti"], access_claims["exp"])
    if refresh_jti := access_claims.get("rjti"):
        revoke(refresh_jti, int(time.time()) + extensions.settings().refresh_token_expires_s)
    if family := access_claims.get("fam"):
        revoke_family(family)


def refuse_reuse(claims: Mapping[str, Any]) -> None:
    """A revoked refresh token was presented again: end its family."""
    if claims.get("type") == "refresh" and (family := claims.get("fam")):
        revoke_family(family)


@jwt.token_in_blocklist_loader
def _blocked(_header: dict, payload: dict) -> bool:
    return is_revoked(payload)


def _revoked(_header: dict, payload: dict) -> Response:
    refuse_reuse(payload)
    return _unauthorized("Token has been revoked")


@jwt.user_lookup_loader
def _load_user(_header: dict, payload: dict) -> User | None:
    try:
        return db.session.get(User, uuid.UUID(payload["sub"]))
    except ValueError:
        return None


def _unauthorized(message: str) -> Response:
    return error_response(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def register_jwt_errors(app: Flask) -> None:
    """flask-jwt-extended's failures answer in the API's error shape."""
    jwt.expired_token_loader(lambda _h, _p: _unauthorized("Token has expired"))
    jwt.revoked_token_loader(_revoked)
    jwt.invalid_token_loader(lambda msg: _unauthorized(f"Invalid token: {msg}"))
    jwt.unauthorized_loader(lambda msg: _unauthorized(msg))
    jwt.needs_fresh_token_loader(lambda _h, _p: _unauthorized("Fresh token required"))
    jwt.user_lookup_error_loader(lambda _h, _p: _unauthorized("Unknown user"))
    jwt.token_verification_failed_loader(lambda _h, _p: _unauthorized("Token rejected"))
