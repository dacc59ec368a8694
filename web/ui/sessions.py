"""Browser sessions of the web pages: the signed cookie holds only a random session id, and the
session itself is a Redis key, so logging out (or an expired key) ends it for good even when the
old cookie is replayed. Separate from the JSON API's credentials in both directions: pages never
read an Authorization or X-API-Key header, and the API never reads this cookie."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, redirect, request, session, url_for

from shared.models import User
from shared.redis_client import PREFIX
from web import extensions
from web.extensions import db

F = TypeVar("F", bound=Callable[..., Any])
_KEY = PREFIX + "ui-session:"
_SID = "sid"


def sign_in(user: User) -> None:
    """Start a fresh session for `user` (a new id and CSRF token: no fixation of an old one)."""
    session.clear()
    sid = secrets.token_urlsafe(32)
    ttl = extensions.settings().ui_session_ttl_s
    extensions.redis().set(_KEY + sid, str(user.id), ex=ttl)
    session.permanent = True
    session[_SID] = sid


def sign_out() -> None:
    """End the session server-side, then forget the cookie's contents."""
    if sid := session.get(_SID):
        extensions.redis().delete(_KEY + sid)
    session.clear()


def load_user() -> User | None:
    """The signed-in, active user of this request (sliding expiry), or None."""
    sid = session.get(_SID)
    if not sid:
        return None
    ttl = extensions.settings().ui_session_ttl_s
    user_id = extensions.redis().getex(_KEY + sid, ex=ttl)
    user = db.session.get(User, uuid.UUID(user_id.decode())) if user_id else None
    if user is None or not user.is_active:  # a disabled account loses its sessions at once
        sign_out()
        return None
    g.user = user  # what the services' `current()` reads, as after the API's authentication
    g.user_id = str(user.id)
    return user


def page_login_required(view: F) -> F:
    """Decorator: a signed-in user, else the sign-in page (htmx requests are told to go there)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if load_user() is None:
            target = url_for("ui.login", next=request.full_path.rstrip("?"))
            if request.headers.get("HX-Request"):
                return "", 401, {"HX-Redirect": target}
            return redirect(target)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def current_user_id() -> uuid.UUID:
    """The signed-in user's id (pages behind `page_login_required` only)."""
    return g.user.id
