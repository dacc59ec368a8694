"""The webhooks pages: create with the signing secret shown once, the form's refusals, pause and
resume, a test event and a redelivery in the delivery log, delete after confirmation, CSRF on
every form and another user's endpoints out of reach (404)."""

from __future__ import annotations

import re
import uuid

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from shared.webhooks import WebhookDelivery, WebhookEndpoint
from shared.webhooks import secrets as webhook_secrets
from tests.ui.pages import csrf_token, ready_model, sign_up, user_id
from web import extensions
from web.extensions import db

RECEIVER = "http://127.0.0.1:9/hooks"  # tests allow http and private addresses (conftest)
_SECRET = re.compile(r'id="new-secret"[^>]*value="(whsec_[^"]+)"')


def _create(client: FlaskClient, url: str = RECEIVER, **fields) -> tuple[int, str]:
    data = {"url": url, "events": ["job.succeeded", "model.ready"], "model_id": ""}
    data |= fields
    data["csrf_token"] = csrf_token(client, "/webhooks")
    resp = client.post("/webhooks", data=data)
    return resp.status_code, resp.get_data(as_text=True)


def _endpoints(app: Flask, owner: uuid.UUID) -> list[WebhookEndpoint]:
    with app.app_context():
        rows = db.session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.owner_id == owner))
        return list(rows)


def _deliveries(app: Flask, endpoint_id: uuid.UUID) -> list[WebhookDelivery]:
    with app.app_context():
        query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        return list(db.session.scalars(query))


def test_create_shows_the_secret_once(app: Flask, browser_client: FlaskClient) -> None:
    owner = user_id(app, sign_up(browser_client))
    model_id = ready_model(app, owner)
    listing = browser_client.get("/webhooks").get_data(as_text=True)
    assert 'href="/webhooks" aria-current="page">Webhooks' in listing
    assert f'<option value="{model_id}">iris v1</option>' in listing

    status, page = _create(browser_client, model_id=str(model_id))
    assert status == 201
    secret = _SECRET.search(page).group(1)
    assert 'data-copy="#new-secret"' in page
    (endpoint,) = _endpoints(app, owner)
    assert endpoint.events == ["job.succeeded", "model.ready"] and endpoint.model_id == model_id
    with app.app_context():  # the secret shown is the one deliveries are signed with
        assert webhook_secrets.decrypt(endpoint.secret_ciphertext, extensions.settings()) == secret
    again = browser_client.get("/webhooks").get_data(as_text=True)
    assert "whsec_" not in again and RECEIVER in again and "iris v1" in again
    assert "whsec_" not in browser_client.get(f"/webhooks/{endpoint.id}").get_data(as_text=True)


def test_form_refusals(app: Flask, browser_client: FlaskClient) -> None:
    owner = user_id(app, sign_up(browser_client))
    refused = browser_client.post("/webhooks", data={"url": RECEIVER, "events": ["job.failed"]})
    assert refused.status_code == 400 and "Form refused" in refused.get_data(as_text=True)
    status, page = _create(browser_client, events=[])
    assert status == 422 and "Choose at least one event." in page
    status, page = _create(browser_client, url="ftp://example.com/x")
    assert status == 422 and "This webhook URL is refused" in page
    status, page = _create(browser_client, model_id=str(uuid.uuid4()))  # not one of the choices
    assert status == 422 and "Not a valid choice" in page
    assert _endpoints(app, owner) == []


def test_pause_test_event_redeliver_resume_delete(app: Flask, browser_client: FlaskClient) -> None:
    owner = user_id(app, sign_up(browser_client))
    assert _create(browser_client)[0] == 201
    (endpoint,) = _endpoints(app, owner)
    base = f"/webhooks/{endpoint.id}"
    token = csrf_token(browser_client, base)

    assert browser_client.post(f"{base}/test").status_code == 400  # no token
    assert _deliveries(app, endpoint.id) == []
    assert browser_client.post(f"{base}/test", data={"csrf_token": token}).status_code == 303
    (delivery,) = _deliveries(app, endpoint.id)
    assert delivery.event == "webhook.test" and delivery.status == "pending"
    log = browser_client.get(base).get_data(as_text=True)
    assert f'id="delivery-{delivery.id}"' in log and "badge-pending" in log

    paused = browser_client.post(f"{base}/active", data={"csrf_token": token, "active": "false"})
    assert paused.status_code == 303
    (delivery,) = _deliveries(app, endpoint.id)  # pausing fails what was pending
    assert delivery.status == "failed" and delivery.last_error == "endpoint disabled by its owner"
    assert 'badge-disabled">paused' in browser_client.get(base).get_data(as_text=True)

    redeliver = f"{base}/deliveries/{delivery.id}/redeliver"
    assert browser_client.post(redeliver, data={"csrf_token": token}).status_code == 303
    assert _deliveries(app, endpoint.id)[0].status == "pending"
    missing = f"{base}/deliveries/{uuid.uuid4()}/redeliver"
    assert browser_client.post(missing, data={"csrf_token": token}).status_code == 404

    resumed = {"csrf_token": token, "active": "true", "back": "list"}
    answer = browser_client.post(f"{base}/active", data=resumed)
    assert answer.status_code == 303 and answer.headers["Location"] == "/webhooks"
    assert _endpoints(app, owner)[0].is_active

    assert "Delete the webhook" in browser_client.get(f"{base}/delete").get_data(as_text=True)
    assert _endpoints(app, owner) != []  # the confirmation page deletes nothing
    assert browser_client.post(f"{base}/delete", data={"csrf_token": token}).status_code == 303
    assert _endpoints(app, owner) == [] and _deliveries(app, endpoint.id) == []


def test_change_url_and_events(app: Flask, browser_client: FlaskClient) -> None:
    owner = user_id(app, sign_up(browser_client))
    assert _create(browser_client)[0] == 201
    (endpoint,) = _endpoints(app, owner)
    base = f"/webhooks/{endpoint.id}"
    page = browser_client.get(base).get_data(as_text=True)
    assert (
        f'value="{RECEIVER}"' in page and 'checked id="events-3"' in page
    )  # events-3: model.ready
    token = csrf_token(browser_client, base)
    changed = {"url": RECEIVER + "/v2", "events": ["batch.finished"]}
    assert browser_client.post(base, data=changed).status_code == 400  # no token
    refused = browser_client.post(base, data={**changed, "url": "ftp://x", "csrf_token": token})
    assert refused.status_code == 422
    assert "This webhook URL is refused" in refused.get_data(as_text=True)
    assert _endpoints(app, owner)[0].url == RECEIVER
    assert browser_client.post(base, data={**changed, "csrf_token": token}).status_code == 303
    (endpoint,) = _endpoints(app, owner)
    assert endpoint.url == RECEIVER + "/v2" and endpoint.events == ["batch.finished"]


def test_disabled_reason_shown(app: Flask, browser_client: FlaskClient) -> None:
    owner = user_id(app, sign_up(browser_client))
    assert _create(browser_client)[0] == 201
    (endpoint,) = _endpoints(app, owner)
    with app.app_context():
        db.session.get(WebhookEndpoint, endpoint.id).is_active = False
        db.session.get(WebhookEndpoint, endpoint.id).disabled_reason = "gone"
        db.session.commit()
    page = browser_client.get("/webhooks").get_data(as_text=True)
    assert "disabled</span> <small>its receiver answered 410 Gone" in page
    assert 'name="active" value="true"><button type="submit">Resume' in page


def test_another_users_endpoints_are_404(app: Flask, browser_client: FlaskClient) -> None:
    owner = user_id(app, sign_up(browser_client))
    assert _create(browser_client)[0] == 201
    (endpoint,) = _endpoints(app, owner)
    assert (
        browser_client.post(
            f"/webhooks/{endpoint.id}/test",
            data={"csrf_token": csrf_token(browser_client, "/webhooks")},
        ).status_code
        == 303
    )
    (delivery,) = _deliveries(app, endpoint.id)

    stranger = app.test_client()
    sign_up(stranger)
    token = csrf_token(stranger, "/webhooks")
    assert RECEIVER not in stranger.get("/webhooks").get_data(as_text=True)
    base = f"/webhooks/{endpoint.id}"
    assert stranger.get(base).status_code == 404
    assert stranger.get(f"{base}/delete").status_code == 404
    for path, extra in (
        (base, {"url": RECEIVER + "/theirs", "events": ["job.failed"]}),
        (f"{base}/test", {}),
        (f"{base}/active", {"active": "false"}),
        (f"{base}/delete", {}),
        (f"{base}/deliveries/{delivery.id}/redeliver", {}),
    ):
        assert stranger.post(path, data={"csrf_token": token, **extra}).status_code == 404, path
    (still,) = _endpoints(app, owner)
    assert still.is_active and still.url == RECEIVER and len(_deliveries(app, endpoint.id)) == 1
