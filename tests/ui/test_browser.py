"""The web pages in a real browser (Playwright driving Debian's chromium) against the app over
HTTP and a real Celery worker: a new user's whole first session, as the issue describes it."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select, text

from shared.jobs.checks import normalise_rows
from shared.jobs.rows import queued_row
from shared.jobs.statements import INSERT_QUEUED
from shared.models import MLModel
from tests.fixtures.api import PASSWORD
from tests.ui.conftest import SCREENSHOTS
from tests.ui.pages import ready_model, user_id
from web.extensions import db
from web.jobs import queue

pytestmark = pytest.mark.e2e

SHOTS = Path(os.environ.get("UI_SCREENSHOTS_DIR", SCREENSHOTS))
ROW = {"sepal_length": "5.1", "sepal_width": "3.5", "petal_length": "1.4", "petal_width": "0.2"}
API_ROWS = [
    [[6.7, 3.1, 4.4, 1.4]],
    [[6.3, 3.3, 6.0, 2.5], [5.0, 3.4, 1.5, 0.2]],
    [[5.8, 2.7, 4.1, 1.0]],
]
JOBS = 2 + len(API_ROWS)  # try it, the queued one, the API's
READY_WAIT_MS = 90_000  # a fresh worker child's first validation imports the sandbox


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _sign_up(page: Page, email: str) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_role("link", name="Create one").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/models$"))
    expect(page.locator(".flash")).to_contain_text("Welcome")


def _upload_until_ready(page: Page, model_file: Path) -> None:
    page.get_by_label("Name", exact=True).fill("iris")
    page.get_by_label("Model file").set_input_files(str(model_file))
    page.get_by_role("button", name="Upload").click()
    expect(page).to_have_url(re.compile(r"/models/iris\?version=1"))
    # The status badge polls while the worker validates, then the page reloads itself.
    expect(page.locator("#version-status .badge")).to_have_text("ready", timeout=READY_WAIT_MS)
    columns = page.get_by_role("region", name="Input columns")
    expect(columns.get_by_role("row", name=re.compile("sepal_length"))).to_contain_text("number")
    _shot(page, "model")


def _try_it(page: Page) -> None:
    page.get_by_role("link", name="Try it").click()
    for column, value in ROW.items():
        page.get_by_label(column, exact=True).fill(value)
    page.get_by_role("button", name="Predict").click()
    result = page.get_by_role("region", name=re.compile("Result"))
    expect(result.locator(".badge")).to_have_text("succeeded")
    expect(page.locator("#prediction")).to_have_text("0")  # a setosa row
    expect(result).to_contain_text("Inference")


def _queued_job(app: Flask, email: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A job written as the web tier writes it (row first, `queued`), its id not yet queued."""
    with app.test_request_context():
        model = db.session.scalars(select(MLModel).where(MLModel.name == "iris")).one()
        rows = normalise_rows([[5.9, 3.0, 5.1, 1.8]], model.input_schema, 10)
        row = queued_row(
            model_id=model.id,
            model_version=model.version,
            owner_id=model.owner_id,
            rows=rows,
            probabilities=False,
            request_id=None,
        )
        db.session.execute(INSERT_QUEUED, row)
        db.session.commit()
        return row["id"], model.id


def _api_jobs(page: Page, live_url: str, email: str, model_id: uuid.UUID) -> None:
    """A few jobs through the JSON API, so the history and charts have more than one point."""
    login = page.request.post(
        f"{live_url}/api/v1/auth/login", data={"email": email, "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    for rows in API_ROWS:
        resp = page.request.post(
            f"{live_url}/api/v1/models/{model_id}/jobs", data={"inputs": rows}, headers=headers
        )
        assert resp.status == 202, resp.text()


def _live_history(page: Page, app: Flask, email: str, live_url: str) -> None:
    """The history shows the job queued, then succeeded, without a reload of the page."""
    job_id, model_id = _queued_job(app, email)
    _api_jobs(page, live_url, email, model_id)
    page.get_by_role("link", name="Jobs", exact=True).click()
    row = page.locator(f"#job-{job_id}")
    expect(row).to_have_attribute("data-status", "queued")
    page.evaluate("window.sameDocument = true")  # gone if the page reloads
    with app.test_request_context():
        assert queue.enqueue(job_id, model_id)
    expect(row).to_have_attribute("data-status", "succeeded", timeout=30_000)
    assert page.evaluate("window.sameDocument === true")
    _shot(page, "jobs")


def _charts(page: Page) -> None:
    page.get_by_role("link", name="Models", exact=True).click()
    _shot(page, "models")
    page.get_by_role("link", name="iris").click()
    page.get_by_role("link", name="Analytics").click()
    expect(page.locator("#stat-total")).to_have_text(str(JOBS))
    points = page.evaluate(
        """() => {
            const sum = (id) => Chart.getChart(document.getElementById(id)).data.datasets
                .flatMap((d) => d.data).filter((v) => v !== null).reduce((a, b) => a + b, 0);
            return {daily: sum('chart-daily'), status: sum('chart-status'),
                    latency: sum('chart-latency'), rates: sum('chart-rates')};
        }"""
    )
    assert points["daily"] == JOBS and points["status"] == JOBS, points
    assert points["latency"] > 0 and points["rates"] > 0, points
    page.get_by_role("link", name="30d").click()
    expect(page.locator("#days")).to_have_value("30")
    _shot(page, "analytics")


def _api_key(page: Page, live_url: str) -> None:
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name", exact=True).fill("laptop")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").input_value()
    assert key.startswith("mlp_")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    me = page.request.get(f"{live_url}/api/v1/auth/me", headers={"X-API-Key": key})
    assert me.status == 200
    page.goto("/keys")  # shown once: the list itself never has it
    expect(page.locator("#new-key")).to_have_count(0)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("row", name=re.compile("laptop")).get_by_role("button", name="Revoke").click()
    expect(page.locator(".flash")).to_contain_text("Key revoked")
    refused = page.request.get(f"{live_url}/api/v1/auth/me", headers={"X-API-Key": key})
    assert refused.status == 401


def _sign_out(page: Page, browser, live_url: str) -> None:
    cookies = page.context.cookies()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/models")
    expect(page).to_have_url(re.compile(r"/login\?next=/models"))
    # The cookie of the ended session, replayed by another browser, opens nothing either.
    replay = browser.new_context(base_url=live_url)
    replay.add_cookies(cookies)
    old = replay.new_page()
    old.goto("/models")
    expect(old).to_have_url(re.compile(r"/login"))
    replay.close()


def test_first_session(page: Page, browser, app: Flask, live_url: str, worker, frame_model_file):
    email = f"ui-{uuid.uuid4().hex[:8]}@example.com"
    _sign_up(page, email)
    cookie = next(c for c in page.context.cookies() if c["name"] == "mlsp_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
    _upload_until_ready(page, frame_model_file)
    _try_it(page)
    _live_history(page, app, email, live_url)
    _charts(page)
    _api_key(page, live_url)
    _sign_out(page, browser, live_url)


def test_phone_width(page: Page, app: Flask, live_url: str) -> None:
    """At 375 px nothing is wider than the screen: the navigation wraps, tables scroll."""
    page.set_viewport_size({"width": 375, "height": 800})
    email = f"phone-{uuid.uuid4().hex[:8]}@example.com"
    _sign_up(page, email)
    ready_model(app, user_id(app, email))
    pages = ("/models", "/models/iris", "/models/iris/analytics", "/models/iris/try", "/jobs")
    page.goto("/webhooks")  # an endpoint with a long URL: its log and the list must still fit
    page.get_by_label("Receiver URL").fill("http://127.0.0.1:9/" + "receiver/" * 12)
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.locator("#new-secret")).to_be_visible()
    endpoint = page.get_by_role("link", name="Its delivery log").get_attribute("href")
    for path in (*pages, "/keys", "/batches", "/webhooks", endpoint, "/models/iris/versions"):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, (path, width)
    page.keyboard.press("Tab")  # the first stop is the skip link, then the navigation
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()


def _delivery_log(page: Page, app: Flask, owner: uuid.UUID) -> None:
    """A test event's row is pending, then shows what the webhooks worker recorded (written here
    as it writes it) without a reload."""
    page.get_by_role("link", name=re.compile(re.escape("127.0.0.1:9"))).click()
    page.get_by_role("button", name="Send a test event").click()
    row = page.get_by_role("row", name=re.compile("webhook.test"))
    expect(row).to_contain_text("pending")
    page.evaluate("window.sameDocument = true")  # gone if the page reloads
    with app.app_context():
        db.session.execute(
            text(
                "UPDATE webhook_deliveries SET status = 'delivered', attempts = 1,"
                " last_status_code = 204, delivered_at = now(), next_attempt_at = NULL"
                " WHERE endpoint_id IN (SELECT id FROM webhook_endpoints WHERE owner_id = :owner)"
            ),
            {"owner": owner},
        )
        db.session.commit()
    expect(row).to_contain_text("delivered", timeout=15_000)
    expect(row).to_contain_text("204")
    assert page.evaluate("window.sameDocument === true")


def test_webhook_secret_and_aliases(page: Page, app: Flask) -> None:
    """A webhook's secret shown once with a working copy button; an alias set and moved and a
    traffic split set from the model page (no script error, no CSP refusal on the way)."""
    email = f"hooks-{uuid.uuid4().hex[:8]}@example.com"
    _sign_up(page, email)
    owner = user_id(app, email)
    for version in (1, 2):
        ready_model(app, owner, version=version)
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_label("Receiver URL").fill("http://127.0.0.1:9/hooks")
    page.get_by_label("batch.finished").check()
    page.get_by_role("button", name="Add endpoint").click()
    secret = page.locator("#new-secret").input_value()
    assert secret.startswith("whsec_")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    row = page.get_by_role("row", name=re.compile(re.escape("127.0.0.1:9")))
    expect(row).to_contain_text("job.succeeded, job.failed, batch.finished")
    row.get_by_role("button", name="Pause").click()
    expect(page.locator(".flash")).to_contain_text("paused")
    page.goto("/webhooks")
    expect(page.locator("#new-secret")).to_have_count(0)
    _shot(page, "webhooks")
    _delivery_log(page, app, owner)

    page.goto("/models/iris")
    aliases = page.get_by_role("region", name="Aliases")
    aliases.get_by_label("Alias", exact=True).fill("production")
    aliases.get_by_label("Version", exact=True).select_option("1")
    aliases.get_by_role("button", name="Set alias").click()
    expect(page.locator(".flash")).to_contain_text("iris@production now points to v1 (new)")
    aliases.get_by_label("Alias", exact=True).fill("production")
    aliases.get_by_label("Version", exact=True).select_option("2")
    aliases.get_by_role("button", name="Set alias").click()
    expect(page.locator(".flash")).to_contain_text("now points to v2 (before: v1)")
    traffic = page.get_by_role("region", name="Traffic")
    traffic.get_by_label("v2 weight (%)").fill("90")
    traffic.get_by_label("v1 weight (%)").fill("10")
    traffic.get_by_role("button", name="Set traffic").click()
    expect(page.locator(".flash")).to_contain_text("Traffic of iris: v1 10 %, v2 90 %.")
    _shot(page, "aliases")
