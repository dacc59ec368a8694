"""Webhook endpoints: the list, create (the signing secret shown once, with a copy button),
pause/resume, delete after a confirmation page, and one endpoint's delivery log with a test event
and redelivery. Every change goes through web/webhooks/service.py, as the JSON routes do."""

from __future__ import annotations

import uuid

from flask import abort, flash, redirect, render_template, request, url_for
from pydantic import ValidationError
from sqlalchemy import select
from wtforms import SelectChoice

from shared.errors import ApiError
from shared.models import MLModel
from shared.schemas.common import PageQuery
from shared.webhooks import WebhookDelivery, WebhookEndpoint
from shared.webhooks.schemas import WebhookCreate, WebhookPatch
from web.extensions import db
from web.pagination import page_of
from web.scoping import get_owned
from web.ui import queries
from web.ui.blueprint import add_nav_item, bp
from web.ui.forms import ActionForm, WebhookCreateForm, WebhookEditForm
from web.ui.sessions import current_user_id, page_login_required
from web.ui.views_models import _messages, _page_number
from web.webhooks import service

# More than MAX_WEBHOOKS_PER_USER allows by default: the list is one page.
MAX_LISTED = 100
# The model filter's choices: the caller's newest versions (a select, not a search).
MAX_MODEL_CHOICES = 500
EVERY_MODEL = ""

DISABLED_WHY = {
    "gone": "its receiver answered 410 Gone",
    "failing": "every delivery failed for 24 hours",
}


def _owned(webhook_id: uuid.UUID, *, lock: bool = False) -> WebhookEndpoint:
    return get_owned(WebhookEndpoint, webhook_id, "Webhook", lock=lock)


def _model_choices() -> list[SelectChoice]:
    rows = db.session.execute(
        select(MLModel.id, MLModel.name, MLModel.version)
        .where(MLModel.owner_id == current_user_id(), MLModel.deleted_at.is_(None))
        .order_by(MLModel.name, MLModel.version.desc())
        .limit(MAX_MODEL_CHOICES)
    )
    every = SelectChoice(EVERY_MODEL, "(every model)")
    return [every] + [SelectChoice(str(i), f"{n} v{v}") for i, n, v in rows]


def _create_form(*, blank: bool = False) -> WebhookCreateForm:
    form = WebhookCreateForm(formdata=None) if blank else WebhookCreateForm()
    form.model_id.choices = _model_choices()
    return form


def _endpoints() -> list[tuple[WebhookEndpoint, str | None, int | None]]:
    """The caller's endpoints with the name and version of the model they filter on (one
    statement; a deleted version still names what the filter was)."""
    rows = db.session.execute(
        select(WebhookEndpoint, MLModel.name, MLModel.version)
        .outerjoin(MLModel, MLModel.id == WebhookEndpoint.model_id)
        .where(WebhookEndpoint.owner_id == current_user_id())
        .order_by(WebhookEndpoint.created_at.desc(), WebhookEndpoint.id)
        .limit(MAX_LISTED)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _render(
    form: WebhookCreateForm,
    created: WebhookEndpoint | None = None,
    secret: str | None = None,
    status: int = 200,
):
    return render_template(
        "ui/webhooks.html",
        endpoints=_endpoints(),
        form=form,
        action=ActionForm(),
        created=created,
        secret=secret,
        why=DISABLED_WHY,
    ), status


@bp.get("/webhooks")
@page_login_required
def webhooks():
    return _render(_create_form())


@bp.post("/webhooks")
@page_login_required
def webhook_create():
    form = _create_form()
    if not form.validate_on_submit():
        return _render(form, status=422)
    try:
        body = WebhookCreate(
            url=form.url.data.strip(),
            events=form.events.data,
            model_id=form.model_id.data or None,
        )
        endpoint, secret = service.create(body)
    except ValidationError as err:
        form.form_errors.extend(_messages(err))
        return _render(form, status=422)
    except ApiError as err:  # a refused URL (422), too many endpoints (429), a gone model (404)
        db.session.rollback()
        form.form_errors.append(err.message)
        return _render(form, status=err.status)
    # The secret is in this answer only: rendered here, never stored in clear or redirected with.
    return _render(_create_form(blank=True), created=endpoint, secret=secret, status=201)


@bp.get("/webhooks/<uuid:webhook_id>")
@page_login_required
def webhook(webhook_id: uuid.UUID):
    return _endpoint_page(_owned(webhook_id))


def _endpoint_page(
    endpoint: WebhookEndpoint, edit: WebhookEditForm | None = None, status: int = 200
):
    """One endpoint, the form that changes it and its delivery log, newest first."""
    number = _page_number()
    rows, total = page_of(
        WebhookDelivery,
        [WebhookDelivery.endpoint_id == endpoint.id],
        [WebhookDelivery.created_at.desc(), WebhookDelivery.id],
        PageQuery(page=number, per_page=queries.PER_PAGE),
    )
    model = db.session.get(MLModel, endpoint.model_id) if endpoint.model_id else None
    if edit is None:
        edit = WebhookEditForm(formdata=None, url=endpoint.url, events=endpoint.events)
    return render_template(
        "ui/webhook.html",
        endpoint=endpoint,
        model=model,
        deliveries=queries.Page(rows, number, total),
        edit=edit,
        why=DISABLED_WHY,
    ), status


@bp.post("/webhooks/<uuid:webhook_id>")
@page_login_required
def webhook_edit(webhook_id: uuid.UUID):
    """Change its URL or events (checked as the API checks them)."""
    endpoint = _owned(webhook_id, lock=True)
    form = WebhookEditForm()
    if not form.validate_on_submit():
        db.session.rollback()
        return _endpoint_page(endpoint, form, 422)
    try:
        patch = WebhookPatch(url=form.url.data.strip(), events=form.events.data)
        service.update_endpoint(endpoint, patch)
    except ValidationError as err:
        form.form_errors.extend(_messages(err))
    except ApiError as err:  # the URL refused (422)
        form.form_errors.append(err.message)
    else:
        flash("Webhook changed.")
        return redirect(url_for("ui.webhook", webhook_id=webhook_id), 303)
    db.session.rollback()
    return _endpoint_page(_owned(webhook_id), form, 422)


@bp.post("/webhooks/<uuid:webhook_id>/active")
@page_login_required
def webhook_active(webhook_id: uuid.UUID):
    """Pause (its pending deliveries fail) or resume (also one the service disabled)."""
    wanted = request.form.get("active")
    if wanted not in ("true", "false"):
        abort(400)
    endpoint = service.update_endpoint(
        _owned(webhook_id, lock=True), WebhookPatch(is_active=wanted == "true")
    )
    flash(f"{endpoint.url} {'resumed' if endpoint.is_active else 'paused'}.")
    back = request.form.get("back") == "list"
    target = url_for("ui.webhooks") if back else url_for("ui.webhook", webhook_id=webhook_id)
    return redirect(target, 303)


@bp.route("/webhooks/<uuid:webhook_id>/delete", methods=["GET", "POST"])
@page_login_required
def webhook_delete(webhook_id: uuid.UUID):
    """A confirmation page; its form deletes the endpoint and its delivery log."""
    endpoint = _owned(webhook_id)
    if request.method == "POST":
        url = endpoint.url
        service.delete(endpoint)
        flash(f"Deleted the webhook {url}.")
        return redirect(url_for("ui.webhooks"), 303)
    return render_template("ui/confirm_webhook_delete.html", endpoint=endpoint, form=ActionForm())


@bp.post("/webhooks/<uuid:webhook_id>/test")
@page_login_required
def webhook_test(webhook_id: uuid.UUID):
    service.send_test(_owned(webhook_id))
    flash("Test event queued: its delivery appears below.")
    return redirect(url_for("ui.webhook", webhook_id=webhook_id), 303)


@bp.post("/webhooks/<uuid:webhook_id>/deliveries/<uuid:delivery_id>/redeliver")
@page_login_required
def webhook_redeliver(webhook_id: uuid.UUID, delivery_id: uuid.UUID):
    """Send an event again now, with the same `webhook-id` and body."""
    service.redeliver(_owned(webhook_id), delivery_id)
    flash("Redelivery queued.")
    return redirect(url_for("ui.webhook", webhook_id=webhook_id), 303)


add_nav_item(
    "ui.webhooks",
    "Webhooks",
    also=("ui.webhook", "ui.webhook_create", "ui.webhook_edit", "ui.webhook_delete"),
)
