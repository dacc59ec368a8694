"""JWT sessions (flask-jwt-extended) with a Redis revocation list shared by all web processes."""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask import Flask, Response, current_app
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token

from shared.models import User
from shared.redis_client import PREFIX
from web.errors import error_response
from web.extensions import app_redis, db, jwt

_REVOKED = PREFIX + "revoked:"


def _settings():
    return current_app.extensions["mlsp_settings"]


def issue_tokens(user: User) -> dict[str, Any]:
    """A fresh access + refresh pair; the access token remembers its refresh token's jti."""
    refresh = create_refresh_token(identity=str(user.id))
    refresh_jti = decode_token(refresh)["jti"]
    access = create_access_token(identity=str(user.id), additional_claims={"rjti": refresh_jti})
    return {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "bearer",
        "expires_in": _settings().access_token_expires_s,
    }


def revoke(jti: str, expires_at: int) -> bool:
    """Revoke a token until it would have expired anyway; False if it already was revoked."""
    ttl = max(1, int(expires_at - time.time()))
    return bool(app_redis().set(_REVOKED + jti, 1, nx=True, ex=ttl))


def is_revoked(jti: str) -> bool:
    return bool(app_redis().exists(_REVOKED + jti))


def revoke_session(access_claims: dict[str, Any]) -> None:
    """Logout: the access token and the refresh token issued with it stop working at once."""
    revoke(access_claims["jti"], access_claims["exp"])
    if refresh_jti := access_claims.get("rjti"):
        revoke(refresh_jti, int(time.time()) + _settings().refresh_token_expires_s)


@jwt.token_in_blocklist_loader
def _blocked(_header: dict, payload: dict) -> bool:
    return is_revoked(payload["jti"])


@jwt.user_lookup_loader
def _load_user(_header: dict, payload: dict) -> User | None:
    try:
        return db.session.get(User, uuid.UUID(payload["sub"]))
    except ValueError:
        return None


def _unauthorized(message: str) -> Response:
    return error_response(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def register_jwt_errors(app: Flask) -> None:
    """flask-jwt-extended's failures answer in the API.md shape."""
    jwt.expired_token_loader(lambda _h, _p: _unauthorized("Token has expired"))
    jwt.revoked_token_loader(lambda _h, _p: _unauthorized("Token has been revoked"))
    jwt.invalid_token_loader(lambda msg: _unauthorized(f"Invalid token: {msg}"))
    jwt.unauthorized_loader(lambda msg: _unauthorized(msg))
    jwt.needs_fresh_token_loader(lambda _h, _p: _unauthorized("Fresh token required"))
    jwt.user_lookup_error_loader(lambda _h, _p: _unauthorized("Unknown user"))
    jwt.token_verification_failed_loader(lambda _h, _p: _unauthorized("Token rejected"))
