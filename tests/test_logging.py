"""Structured logs: the JSON formatter, one line per request with its id, and the request id
carried from an HTTP request to the worker process's log lines (end to end)."""

from __future__ import annotations

import json
import logging
import secrets
import time

import pytest

from shared import logs
from shared.config import Settings
from tests.fixtures.models import fit_classifier, upload_ready
from tests.fixtures.services import log_path

SECRET_VALUE = 6.0123456789  # an input value that must never reach a log


def _record(message: str = "hello", **extra) -> logging.LogRecord:
    record = logging.LogRecord("mlsp.test", logging.INFO, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


@pytest.mark.no_db
def test_json_line_has_context_and_extras():
    with logs.bound(request_id="r-1", task_id="t-1"):
        line = logs.JsonFormatter().format(_record("hi %s", job_id="j-1"))
    entry = json.loads(line)
    assert entry["message"] == "hi %s" and entry["level"] == "INFO"
    assert (entry["request_id"], entry["task_id"], entry["job_id"]) == ("r-1", "t-1", "j-1")
    assert entry["ts"].endswith("+00:00")
    assert "request_id" not in json.loads(logs.JsonFormatter().format(_record()))


@pytest.mark.no_db
def test_exceptions_are_one_json_line():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record()
        record.exc_info = sys.exc_info()
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line and "ValueError: boom" in json.loads(line)["exc"]


@pytest.mark.no_db
def test_text_format_keeps_the_fields():
    with logs.bound(request_id="abc"):
        line = logs.TextFormatter().format(_record("hello", status=200))
    assert "hello" in line and "request_id=abc" in line and "status=200" in line


def _request_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "mlsp.request"]


def test_request_line_echoes_a_given_request_id(client, user, caplog):
    caplog.set_level(logging.INFO)
    resp = client.get("/api/v1/auth/me", headers={**user.headers, "X-Request-ID": "my-id.1"})
    assert resp.headers["X-Request-ID"] == "my-id.1"
    (record,) = _request_records(caplog)
    assert record.request_id == "my-id.1" and record.status == 200
    assert record.method == "GET" and record.path == "/api/v1/auth/me"
    assert record.user_id == user.id and record.duration_ms > 0
    assert record.levelno == logging.INFO


def test_request_id_generated_when_missing_or_invalid(client, caplog):
    caplog.set_level(logging.DEBUG)
    for header in ({}, {"X-Request-ID": "bad id with spaces"}):
        resp = client.get("/api/v1/health/ready", headers=header)
        generated = resp.headers["X-Request-ID"]
        assert len(generated) == 32 and generated != "bad id with spaces"
    records = _request_records(caplog)
    assert len({r.request_id for r in records}) == 2
    assert {r.levelno for r in records} == {logging.DEBUG}  # probes stay out of INFO


def test_no_body_or_secrets_in_request_lines(client, caplog):
    caplog.set_level(logging.DEBUG)
    password = "a-very-secret-password"
    client.post("/api/v1/auth/login", json={"email": "x@example.com", "password": password})
    client.get("/api/v1/auth/me", headers={"Authorization": "Bearer not-a-token"})
    text = "\n".join(logs.JsonFormatter().format(r) for r in caplog.records)
    assert password not in text and "not-a-token" not in text


def test_slow_requests_warn(caplog):
    from web import create_app

    app = create_app(Settings(SLOW_REQUEST_MS=0.001))
    caplog.set_level(logging.INFO)
    app.test_client().get("/api/v1/health")
    (record,) = _request_records(caplog)
    assert record.levelno == logging.WARNING and record.slow is True


def test_client_address_from_a_trusted_proxy_only(caplog):
    """X-Forwarded-For names the client only when the peer is in FORWARDED_ALLOW_IPS: anyone
    else could pick the address their per-IP rate limit is counted under."""
    from web import create_app

    app = create_app(Settings(FORWARDED_ALLOW_IPS="10.0.0.0/8, 127.0.0.1"))
    plain = create_app(Settings())
    caplog.set_level(logging.DEBUG)  # after the factories, which set the root logger's level
    forwarded = {"X-Forwarded-For": "203.0.113.9, 10.0.0.2"}
    for peer in ("10.0.0.2", "192.0.2.1"):
        app.test_client().get(
            "/api/v1/health/live", headers=forwarded, environ_base={"REMOTE_ADDR": peer}
        )
    plain.test_client().get(
        "/api/v1/health/live", headers=forwarded, environ_base={"REMOTE_ADDR": "127.0.0.1"}
    )
    seen = [r.remote_addr for r in _request_records(caplog)]
    assert seen == ["203.0.113.9", "192.0.2.1", "127.0.0.1"]


def _json_lines(path) -> list[dict]:
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    return entries


def _wait_for_line(path, predicate, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in _json_lines(path) if predicate(e)]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no matching JSON line in {path}")


@pytest.mark.e2e
def test_request_id_reaches_the_worker_log(private_queue, user, tmp_path):
    """A real worker process with its output in a file: the upload's and the prediction's
    request ids appear in its JSON lines, and the input values do not."""
    client = private_queue.client
    path = log_path(f"worker-{private_queue.name}")
    path.write_text("")
    with private_queue.worker(concurrency=1):
        upload_id = f"up-{secrets.token_hex(6)}"
        client.environ_base["HTTP_X_REQUEST_ID"] = upload_id
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        job_id = f"job-{secrets.token_hex(6)}"
        client.environ_base["HTTP_X_REQUEST_ID"] = job_id
        body = {"inputs": [[SECRET_VALUE, 3.0, 1.4, 0.2]]}
        resp = client.post(f"/api/v1/models/{meta['id']}/predict", json=body, headers=user.headers)
        assert resp.status_code == 200, resp.json
        assert resp.headers["X-Request-ID"] == job_id
        validation = _wait_for_line(path, lambda e: e.get("request_id") == upload_id)
        assert validation.get("task_id")
        predicted = _wait_for_line(path, lambda e: e.get("request_id") == job_id)
        assert predicted["task"].startswith("mlsp.")
    assert str(SECRET_VALUE) not in path.read_text()
