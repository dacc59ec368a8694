"""A model name's aliases and traffic on its page (set/move an alias, showing the version it left;
delete; split the bare name's traffic over ready versions with an optional shadow; clear), and
the versions' analytics side by side with the shadow's agreement. The changes go through
web/aliases/service.py as the JSON routes do; its 404/409/422 answers become the form's errors."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from pydantic import ValidationError
from wtforms import SelectChoice

from shared.aliases.schemas import TrafficIn, TrafficOut
from shared.errors import ApiError
from shared.models import MLModel
from web import extensions
from web.aliases import service
from web.aliases.analytics import name_analytics
from web.extensions import db
from web.ui.blueprint import bp
from web.ui.forms import AliasForm
from web.ui.sessions import page_login_required
from web.ui.views_models import DAY_CHOICES, _days, _versions_or_404, model_page


def _alias_form(name: str) -> AliasForm:
    form = AliasForm()
    form.version.choices = [SelectChoice(m.version, f"v{m.version}") for m in _ready(name)]
    return form


def _ready(name: str) -> list[MLModel]:
    return [m for m in _versions_or_404(name) if m.status == "ready"]


@bp.post("/models/<name>/aliases")
@page_login_required
def alias_set(name: str):
    """Point `name@alias` at a ready version; the flash names the version it pointed to before
    (the rollback target)."""
    form = _alias_form(name)
    if not form.validate_on_submit():
        return model_page(name, alias_form=form, status=422)
    try:
        moved = service.set_alias(name, form.alias.data.strip(), form.version.data)
    except ApiError as err:  # 409 version not ready, 422 alias not allowed, 404 version gone
        form.form_errors.append(err.message)
        return model_page(name, alias_form=form, status=err.status)
    before = f" (before: v{moved.previous_version})" if moved.previous_version else " (new)"
    flash(f"{name}@{moved.alias} now points to v{moved.version}{before}.")
    return redirect(url_for("ui.model", name=name), 303)


@bp.post("/models/<name>/aliases/<alias>/delete")
@page_login_required
def alias_delete(name: str, alias: str):
    _versions_or_404(name)
    service.delete_alias(name, alias)
    flash(f"Removed {name}@{alias}: predictions by it are refused from now on.")
    return redirect(url_for("ui.model", name=name), 303)


def _traffic_body(name: str) -> tuple[TrafficIn | None, list[str]]:
    """The split from the form: a weight field per ready version (empty = not routed), an
    optional shadow version and its percent; TrafficIn checks the rest (sum of 100, distinct
    versions, a shadow outside the routes)."""
    routes, errors = [], []
    for model in _ready(name):
        weight = request.form.get(f"weight-{model.version}", "").strip()
        if not weight:
            continue
        if not weight.isdigit():
            errors.append(f"v{model.version}: a weight is a whole number of percent")
        routes.append({"version": model.version, "weight": weight})
    shadow_version = request.form.get("shadow_version", "").strip()
    shadow = None
    if shadow_version:
        shadow = {"version": shadow_version, "percent": request.form.get("shadow_percent", "")}
    if errors:
        return None, errors
    if not routes:
        return None, ["Give at least one ready version a weight."]
    try:
        return TrafficIn.model_validate({"routes": routes, "shadow": shadow}), []
    except ValidationError as err:
        return None, _plain(err)


def _plain(err: ValidationError) -> list[str]:
    """Pydantic's messages for people: the field when there is one, no "Value error, "."""
    out = []
    for e in err.errors(include_url=False):
        where = ".".join(map(str, e["loc"]))
        message = e["msg"].removeprefix("Value error, ")
        out.append(f"{where}: {message}" if where else message[:1].upper() + message[1:])
    return out


def _said(split: TrafficOut) -> str:
    routes = ", ".join(f"v{r.version} {r.weight} %" for r in split.routes)
    shadow = f"; shadow v{split.shadow.version} {split.shadow.percent} %" if split.shadow else ""
    return routes + shadow


@bp.post("/models/<name>/traffic")
@page_login_required
def traffic_set(name: str):
    body, errors = _traffic_body(name)
    if body is None:
        return model_page(name, traffic_errors=errors, status=422)
    try:
        split = service.set_traffic(name, body)
    except ApiError as err:  # 409 a version is not ready, 404 a version is gone
        return model_page(name, traffic_errors=[err.message], status=err.status)
    flash(f"Traffic of {name}: {_said(split)}.")
    return redirect(url_for("ui.model", name=name), 303)


@bp.post("/models/<name>/traffic/clear")
@page_login_required
def traffic_clear(name: str):
    _versions_or_404(name)
    service.delete_traffic(name)
    flash(f"Traffic split of {name} removed: the bare name follows production, else the newest.")
    return redirect(url_for("ui.model", name=name), 303)


@bp.get("/models/<name>/versions")
@page_login_required
def compare(name: str):
    """Each version's numbers over the window, and how shadow predictions agree."""
    found = _versions_or_404(name)
    days = _days(request.args.get("days", 7, type=int))
    data = name_analytics(db.session, name, found, days, extensions.settings().analytics_timeout_ms)
    return render_template("ui/compare.html", name=name, data=data, day_choices=DAY_CHOICES)
