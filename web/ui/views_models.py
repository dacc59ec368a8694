"""Models: the list, a page per name (versions, status, runtime, input columns, upload of a new
version, disable/enable, delete with confirmation) and a version's analytics as charts."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from pydantic import ValidationError
from wtforms import SelectChoice

from shared.errors import ApiError, Conflict, NotFound
from shared.models import MLModel
from shared.schemas.analytics import AnalyticsQuery
from shared.schemas.models import ModelPatch, ModelUpload
from web import extensions
from web.aliases import service as alias_service
from web.analytics.queries import model_analytics
from web.extensions import db
from web.limits import caller_key, limit, upload_limit
from web.registry.routes import accept_upload, change_model, soft_delete
from web.ui import queries
from web.ui.blueprint import bp
from web.ui.forms import NAME_HELP, ActionForm, AliasForm, UploadForm
from web.ui.sessions import page_login_required

DAY_CHOICES = (1, 7, 14, 30, 90)
HISTORY_SHOWN = 10  # the model page's latest alias and traffic changes


def _page_number() -> int:
    page = request.args.get("page", 1, type=int)
    return page if page and 1 <= page <= 1_000_000 else 1


def _versions_or_404(name: str) -> list[MLModel]:
    found = queries.versions(name)
    if not found:
        raise NotFound("Model not found")
    return found


def _version(found: list[MLModel], number: int | None) -> MLModel:
    """The version asked for, else the newest ready one, else the newest."""
    if number is not None:
        for model in found:
            if model.version == number:
                return model
        raise NotFound("Model version not found")
    return next((m for m in found if m.status == "ready"), found[0])


@bp.get("/models")
@page_login_required
def models():
    page = queries.model_names(_page_number())
    return render_template("ui/models.html", page=page, form=UploadForm(), name_help=NAME_HELP)


@bp.post("/models")
@page_login_required
@limit(upload_limit, key_func=caller_key)
def upload():
    form = UploadForm()
    if form.validate_on_submit():
        try:
            upload = ModelUpload(
                file=form.file.data,
                name=form.name.data,
                description=form.description.data or None,
                sample=form.sample.data or None,
            )
            model = accept_upload(upload)
        except ValidationError as err:
            form.form_errors.extend(_messages(err))
        except ApiError as err:
            form.form_errors.append(err.message)
        else:
            flash(f"Uploaded {model.name} version {model.version}: validating.")
            return redirect(url_for("ui.model", name=model.name, version=model.version), 303)
    page = queries.model_names(1)
    return render_template("ui/models.html", page=page, form=form, name_help=NAME_HELP), 422


def _days(asked: int | None) -> int:
    """The window asked for, kept within what the analytics take (1..90 days)."""
    limits = AnalyticsQuery.model_fields["days"].metadata
    low = next(m.ge for m in limits if hasattr(m, "ge"))
    high = next(m.le for m in limits if hasattr(m, "le"))
    return min(max(7 if asked is None else asked, low), high)


def _messages(err: ValidationError) -> list[str]:
    return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors(include_url=False)]


@bp.get("/models/<name>")
@page_login_required
def model(name: str):
    return model_page(name)


def model_page(
    name: str,
    *,
    alias_form: AliasForm | None = None,
    traffic_errors: list[str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The model page; the alias and traffic forms' posts render it again with their errors."""
    found = _versions_or_404(name)
    shown = _version(found, request.args.get("version", type=int))
    ready = [m.version for m in found if m.status == "ready"]
    if alias_form is None:
        alias_form = AliasForm(formdata=None)
        alias_form.version.choices = [SelectChoice(v, f"v{v}") for v in ready]
    described = alias_service.describe(name)  # aliases and traffic as the API describes them
    return render_template(
        "ui/model.html",
        name=name,
        versions=found,
        model=shown,
        form=UploadForm(name=name),
        action=ActionForm(),
        aliases=described.aliases,
        traffic=described.traffic,
        changes=alias_service.history(name, limit=HISTORY_SHOWN),
        ready=ready,
        alias_form=alias_form,
        traffic_errors=traffic_errors or [],
    ), status


@bp.get("/models/<name>/versions/<int:version>/status")
@page_login_required
def version_status(name: str, version: int):
    """The status badge, polled while a version validates; once it has finished validating,
    htmx is told to reload the page (runtime, columns and actions appear)."""
    model = _version(_versions_or_404(name), version)
    headers = {"HX-Refresh": "true"} if model.status != "validating" else {}
    return render_template("ui/_version_status.html", name=name, model=model), 200, headers


@bp.post("/models/<name>/versions/<int:version>/status")
@page_login_required
def set_status(name: str, version: int):
    model = _version(_versions_or_404(name), version)
    wanted = request.form.get("status")
    if wanted not in ("ready", "disabled"):
        abort(400)
    try:
        change_model(model.id, ModelPatch(status=wanted))
    except Conflict as err:  # an alias or the traffic points to it: say which, on its page
        flash(f"Not changed: {err.message}")
    else:
        flash(f"{name} version {version} {'enabled' if wanted == 'ready' else 'disabled'}.")
    return redirect(url_for("ui.model", name=name, version=version), 303)


@bp.route("/models/<name>/versions/<int:version>/delete", methods=["GET", "POST"])
@page_login_required
def delete(name: str, version: int):
    """A confirmation page; its form deletes (soft: the history stays)."""
    model = _version(_versions_or_404(name), version)
    form = ActionForm()
    if request.method == "POST":
        try:
            soft_delete(model.id)
        except Conflict as err:  # an alias or the traffic points to it
            flash(f"Not deleted: {err.message}")
            return redirect(url_for("ui.model", name=name, version=version), 303)
        flash(f"Deleted {name} version {version}.")
        remaining = queries.versions(name)
        target = url_for("ui.model", name=name) if remaining else url_for("ui.models")
        return redirect(target, 303)
    return render_template("ui/confirm_delete.html", model=model, form=form)


@bp.get("/models/<name>/analytics")
@page_login_required
def analytics(name: str):
    model = _version(_versions_or_404(name), request.args.get("version", type=int))
    days = _days(request.args.get("days", 7, type=int))
    data = model_analytics(
        db.session, model.id, days, timeout_ms=extensions.settings().analytics_timeout_ms
    )
    return render_template(
        "ui/analytics.html",
        name=name,
        model=model,
        data=data,
        chart_data=data.model_dump(mode="json"),
        day_choices=DAY_CHOICES,
    )
