"""The one authentication layer: a JWT access token or an API key, on every protected route."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request
from flask_jwt_extended import current_user, verify_jwt_in_request

from shared.errors import Forbidden, Unauthorized
from shared.models import User
from web import epoch
from web.auth import cache
from web.auth.cache import Principal
from web.auth.keys import KEY_PREFIX, key_hash, resolve_key, touch_last_used

F = TypeVar("F", bound=Callable[..., Any])


def _presented_api_key() -> str | None:
    if key := request.headers.get("X-API-Key"):
        return key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.startswith(KEY_PREFIX):
        return token  # a key sent as a bearer token is accepted too
    return None


def _authenticate_key(key: str) -> Principal:
    digest = key_hash(key)
    now_epoch = epoch.current()
    entry = cache.lookup(digest, now_epoch)
    if entry is None:
        found = resolve_key(key)
        if found is None:
            raise Unauthorized("Invalid, expired or revoked API key")
        api_key, user = found
        entry = cache.Entry(
            now_epoch, Principal.of(user), api_key.id, api_key.expires_at, time.monotonic()
        )
        cache.store(digest, entry)
    touch_last_used(entry.api_key_id)
    g.api_key_id = entry.api_key_id
    return entry.principal


def _authenticate_jwt() -> User:
    verify_jwt_in_request()  # raises into flask-jwt-extended's 401 handlers
    return current_user


def authenticate(allow_api_key: bool = True) -> User | Principal:
    """Resolve the caller, refusing disabled accounts."""
    key = _presented_api_key()
    if key is not None and not allow_api_key:
        raise Forbidden("API keys cannot do this; log in with a password", code="jwt_required")
    user = _authenticate_key(key) if key is not None else _authenticate_jwt()
    if user is None:
        raise Unauthorized("Unknown user")
    if not user.is_active:
        raise Forbidden("This account is disabled", code="account_disabled")
    g.user = user
    g.user_id = str(user.id)
    return user


def login_required(allow_api_key: bool = True) -> Callable[[F], F]:
    """Decorator: the route needs an authenticated, active user (`g.user`)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            authenticate(allow_api_key)
            return view(*args, **kwargs)

        wrapper.login_required = True  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def admin_required(view: F) -> F:
    """Decorator: an administrator logged in with a password."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not authenticate(allow_api_key=False).is_admin:
            raise Forbidden("Administrators only")
        return view(*args, **kwargs)

    wrapper.login_required = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def current() -> User | Principal:
    """The authenticated user of this request."""
    return g.user
