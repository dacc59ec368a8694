"""The web interface (issue 26): server-rendered pages at `/` and `/admin` over the same service
code as the JSON API, signed in with a server-side session (web/ui/sessions.py), every form and
state-changing request CSRF-checked. docs/web-ui.md describes it."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, Request, Response, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from shared.config import Settings

csrf = CSRFProtect()

# Paths of the machine interfaces: no cookie session is opened for them, so a session cookie can
# never authenticate an API call (and the API keeps no CSRF surface).
API_PREFIXES = ("/api/", "/v2/", "/metrics")


class PageSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie session for the pages only; the API gets a NullSession."""

    def open_session(self, app: Flask, request: Request):  # type: ignore[override]
        if request.path.startswith(API_PREFIXES) or request.path == "/v2":
            return None
        return super().open_session(app, request)


def _config(settings: Settings) -> dict:
    return {
        "SESSION_COOKIE_NAME": "mlsp_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": settings.secure_cookies,
        "PERMANENT_SESSION_LIFETIME": timedelta(seconds=settings.ui_session_ttl_s),
        # Checked by the pages' blueprints only (web/ui/views.py), never on the JSON API.
        "WTF_CSRF_CHECK_DEFAULT": False,
        # The token lives as long as the session (which ends server-side at logout).
        "WTF_CSRF_TIME_LIMIT": None,
    }


def _security_headers(response: Response) -> Response:
    """Pages run only the app's own scripts (no inline script, no third-party origin)."""
    if request.blueprint in ("ui", "ui_admin"):
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; "
            "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'self'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def register_ui(app: Flask, settings: Settings) -> None:
    """Attach the pages at `/` and the administration at `/admin`."""
    from web.ui.views import admin_bp, bp

    app.config.update(_config(settings))
    app.session_interface = PageSessions()
    csrf.init_app(app)
    app.after_request(_security_headers)
    app.register_blueprint(bp)
    app.register_blueprint(admin_bp, url_prefix="/admin")
