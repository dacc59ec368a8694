"""The pages' blueprints and what every page shares: CSRF checks on state-changing requests, HTML
error pages, the navigation and the signed-in user in every template."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Response, current_app, g, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from shared.errors import ApiError
from web import extensions
from web.registry.uploads import FORM_OVERHEAD
from web.ui import csrf

bp = Blueprint(
    "ui", __name__, template_folder="templates", static_folder="static", static_url_path="/assets"
)
admin_bp = Blueprint("ui_admin", __name__, template_folder="templates")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Endpoints whose form carries a model file: the body limit is the upload's, not a form's, and
# is raised before the CSRF check reads the form.
UPLOAD_ENDPOINTS = frozenset({"ui.upload"})


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: str
    admin_only: bool = False
    also: tuple[str, ...] = ()  # the section's other pages, which mark the link as current

    def current(self, endpoint: str | None) -> bool:
        return endpoint == self.endpoint or endpoint in self.also


# The header's links, in order. Pages of other features join with `add_nav_item` when their
# blueprint is registered (webhooks, aliases): nothing else here changes.
NAV: list[NavItem] = [
    NavItem("ui.models", "Models", also=("ui.model", "ui.analytics", "ui.try_it", "ui.delete")),
    NavItem("ui.jobs", "Jobs", also=("ui.job",)),
    NavItem("ui.batches", "Batches"),
    NavItem("ui.keys", "API keys"),
    NavItem("ui_admin.users", "Admin", admin_only=True),
]


def add_nav_item(
    endpoint: str, label: str, *, also: tuple[str, ...] = (), before: str = "ui.keys"
) -> None:
    """Put a page in the navigation (before the API keys unless told otherwise)."""
    positions = [i for i, item in enumerate(NAV) if item.endpoint == before]
    NAV.insert(positions[0] if positions else len(NAV), NavItem(endpoint, label, also=also))


def _protect() -> None:
    if request.endpoint in UPLOAD_ENDPOINTS:
        request.max_content_length = extensions.settings().max_upload_bytes + FORM_OVERHEAD
    if request.method not in SAFE_METHODS:
        csrf.protect()  # 400 CSRFError without a valid token (form field or X-CSRFToken header)


def _nav() -> dict:
    user = g.get("user")
    items = [i for i in NAV if not i.admin_only or (user is not None and user.is_admin)]
    return {"nav_items": items, "current_user": user, "zip": zip}


def _error_page(status: int, title: str, message: str) -> tuple[str, int]:
    return render_template("ui/error.html", title=title, message=message), status


def _api_error(err: ApiError) -> tuple[str, int] | Response:
    headers = err.headers or {}
    body, status = _error_page(err.status, err.code.replace("_", " ").capitalize(), err.message)
    return Response(body, status, {k: v for k, v in headers.items() if k != "WWW-Authenticate"})


def _http_error(err: HTTPException) -> tuple[str, int]:
    if isinstance(err, CSRFError):
        message = "This form has expired or was not sent by this site. Reload the page and retry."
        return _error_page(400, "Form refused", message)
    return _error_page(err.code or 500, err.name, err.description or err.name)


def _unexpected(err: Exception) -> Response:
    """Anything else (a crash, a database or broker outage): the app's own handler decides the
    status and logs it (web/errors.py), and the page shows its message instead of JSON."""
    handler = current_app._find_error_handler(err, [])  # the app-level handler, not ours
    answer = handler(err) if handler is not None else None
    if not isinstance(answer, Response):
        raise err
    message = (answer.get_json(silent=True) or {}).get("error", {}).get("message", "")
    headers = {k: v for k, v in answer.headers.items() if k == "Retry-After"}
    body, status = _error_page(answer.status_code, "Something went wrong", message)
    return Response(body, status, headers)


for blueprint in (bp, admin_bp):
    blueprint.before_request(_protect)
    blueprint.context_processor(_nav)
    blueprint.register_error_handler(ApiError, _api_error)
    blueprint.register_error_handler(HTTPException, _http_error)
    blueprint.register_error_handler(Exception, _unexpected)
