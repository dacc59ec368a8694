"""Webhook deliveries end to end with real processes: the job, batch and webhooks workers and
beat on queues of their own, a receiver on a loopback port. Events arrive signed for finished
jobs, batches and models; a receiver that fails is retried with the same `webhook-id`; one that
is down gets everything once back; a slow one holds up neither other deliveries nor predictions;
a webhooks worker killed mid-delivery loses nothing."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from standardwebhooks.webhooks import Webhook

from tests.fixtures.api import register_and_login
from tests.fixtures.models import dump, fit_classifier, insert_ready_model, upload, upload_ready
from tests.fixtures.services import Isolated, celery_worker, free_port, isolated
from tests.web.jobs.calls import ROWS, poll, submit
from tests.webhooks import receiver

pytestmark = [pytest.mark.e2e]

ALL_EVENTS = ["job.succeeded", "job.failed", "batch.finished", "model.ready", "model.failed"]
# Retries in milliseconds (5 s -> 10 ms, 2 min -> 240 ms ...), due deliveries found every 0.3 s,
# an attempt's answer awaited 3 s, a dead attempt's lease 2 s.
FAST = {
    "WEBHOOK_RETRY_SCALE": "0.002",
    "WEBHOOK_DISPATCH_INTERVAL_S": "0.3",
    "WEBHOOK_TIMEOUT_S": "3",
    "WEBHOOK_LEASE_S": "2",
    "WEBHOOK_CONCURRENCY": "3",
    "BATCH_CHUNK_ROWS": "100",
}


@dataclass
class Stack:
    env: Isolated
    hooks: subprocess.Popen  # the webhooks worker (the last test kills it)
    metrics_port: int  # its Prometheus exporter

    @property
    def client(self):
        return self.env.client


@pytest.fixture(scope="module")
def stack():
    """One isolated deployment: a worker for jobs and batches (one process for both queues, to
    start fewer processes), the webhooks worker (3 processes), beat."""
    env = isolated(**FAST)
    queue = env.env["DEFAULT_QUEUE"]
    with ExitStack() as processes:
        processes.enter_context(env.worker(queue=f"{queue},{queue}.batches", concurrency=2))
        port = free_port()
        hooks = processes.enter_context(webhooks_worker(env, metrics_port=port))
        processes.enter_context(env.beat())
        yield Stack(env, hooks, port)


def webhooks_worker(env: Isolated, name: str = "hooks", metrics_port: int = 0):
    """The Procfile's `webhooks` worker: its own queue, 3 processes."""
    return celery_worker(
        concurrency=3,
        env={**env.env, "WORKER_METRICS_PORT": str(metrics_port)},
        name=f"{env.name}-{name}",
        queue=f"{env.env['DEFAULT_QUEUE']}.webhooks",
    )


def scrape(port: int) -> dict[str, float]:
    """The exporter's samples, by name and labels as written."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        lines = answer.read().decode().splitlines()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("mlsp_webhook")
    }


def endpoint(client, account, url: str, events=ALL_EVENTS) -> dict:
    resp = client.post(
        "/api/v1/webhooks", json={"url": url, "events": events}, headers=account.headers
    )
    assert resp.status_code == 201, resp.json
    return resp.json


def log(client, account, endpoint_id: str) -> list[dict]:
    url = f"/api/v1/webhooks/{endpoint_id}/deliveries"
    return client.get(url, headers=account.headers).json["items"]


def wait_log(client, account, endpoint_id, predicate, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = log(client, account, endpoint_id)
        if predicate(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"delivery log never matched: {rows}")
        time.sleep(0.1)


def verified(secret: str, hook: receiver.Receiver, event: str) -> list[dict]:
    """The events of this type the receiver got, each checked by the reference verifier."""
    return [Webhook(secret).verify(r.body, r.headers) for r in hook.of_type(event)]


def broken_classifier():
    """Loads and introspects like a 4-feature classifier; its predict raises (shape mismatch)."""
    model = fit_classifier()
    model.coef_ = model.coef_[:, :2]
    return model


def test_events_arrive_signed_for_jobs_batches_and_models(stack, tmp_path):
    c = stack.client
    user = register_and_login(c)
    with receiver.running() as hook:
        created = endpoint(c, user, hook.url)
        secret = created["secret"]
        ready = upload_ready(c, user, fit_classifier(), tmp_path)
        failed_upload = upload(c, user, dump(broken_classifier(), tmp_path / "b.joblib"), "bad")
        assert failed_upload.status_code == 422, failed_upload.json  # validation failed
        failed_id = failed_upload.json["error"]["details"]["model_id"]
        job = poll(c, user, submit(c, user, ready["id"], {"inputs": ROWS}).json["id"]).json
        sync = c.post(
            f"/api/v1/models/{ready['id']}/predict", json={"inputs": ROWS}, headers=user.headers
        )
        assert job["status"] == sync.json["status"] == "succeeded"
        unloadable = insert_ready_model(user, broken_classifier(), tmp_path, name="broken")
        bad_job = poll(c, user, submit(c, user, unloadable, {"inputs": ROWS}).json["id"]).json
        assert bad_job["status"] == "failed", bad_job
        frame = pd.DataFrame(np.array(ROWS * 50), columns=["x0", "x1", "x2", "x3"])
        form = {"file": (io.BytesIO(frame.to_csv(index=False).encode()), "rows.csv")}
        batch = c.post(
            f"/api/v1/models/{ready['id']}/batches",
            data=form,
            headers=user.headers,
            content_type="multipart/form-data",
        ).json
        hook.wait_for(
            lambda got: (
                {json.loads(r.body)["type"] for r in got} == set(ALL_EVENTS) and len(got) >= 7
            ),
            timeout=60,
        )
    models = {e["data"]["id"]: e for e in verified(secret, hook, "model.ready")}
    assert models[ready["id"]]["data"]["status"] == "ready"
    assert models[unloadable]["data"]["status"] == "ready"  # inserted ready: an event too
    (model_failed,) = verified(secret, hook, "model.failed")
    assert model_failed["data"]["id"] == failed_id
    assert model_failed["data"]["status"] == "failed" and model_failed["data"]["error"]
    succeeded = {e["data"]["id"]: e["data"] for e in verified(secret, hook, "job.succeeded")}
    assert succeeded[job["id"]] == c.get(f"/api/v1/jobs/{job['id']}", headers=user.headers).json
    assert succeeded[sync.json["id"]]["result"] == sync.json["result"]  # the inline insert
    (job_failed,) = verified(secret, hook, "job.failed")
    assert job_failed["data"]["id"] == bad_job["id"]
    assert job_failed["data"]["error"]["code"] == bad_job["error"]["code"]
    (finished,) = verified(secret, hook, "batch.finished")
    assert finished["data"] == c.get(f"/api/v1/batches/{batch['id']}", headers=user.headers).json
    assert finished["data"]["status"] == "succeeded" and finished["data"]["rows_done"] == 250
    ids = [r.headers["webhook-id"] for r in hook.requests]
    assert len(ids) == len(set(ids))  # one message per event
    rows = log(c, user, created["id"])
    assert {r["id"] for r in rows} == set(ids) and {r["status"] for r in rows} == {"delivered"}


def test_a_receiver_failing_twice_gets_the_third_attempt_with_the_same_id(stack):
    c = stack.client
    user = register_and_login(c)
    with receiver.running() as hook:
        hook.statuses = [500, 500]
        created = endpoint(c, user, hook.url)
        assert (
            c.post(f"/api/v1/webhooks/{created['id']}/test", headers=user.headers).status_code
            == 202
        )
        hook.wait_for(lambda got: len(got) == 3)
    assert len({r.headers["webhook-id"] for r in hook.requests}) == 1
    assert len({r.body for r in hook.requests}) == 1  # the same message each time
    for got in hook.requests:  # each attempt signed afresh, each verifies
        Webhook(created["secret"]).verify(got.body, got.headers)
    (row,) = wait_log(c, user, created["id"], lambda rows: rows[0]["status"] == "delivered")
    assert (row["attempts"], row["last_status_code"]) == (3, 204)
    assert row["id"] == hook.requests[0].headers["webhook-id"]
    samples = scrape(stack.metrics_port)
    assert samples['mlsp_webhook_attempts_total{outcome="retrying"}'] >= 2
    assert samples['mlsp_webhook_attempts_total{outcome="delivered"}'] >= 1
    assert samples["mlsp_webhook_attempt_seconds_count"] >= 3
    assert "mlsp_webhook_pending_deliveries" in samples


def test_a_receiver_down_for_a_while_gets_everything_once_back(stack):
    c = stack.client
    user = register_and_login(c)
    port = free_port()
    created = endpoint(c, user, f"http://127.0.0.1:{port}/hook")
    for _ in range(3):
        c.post(f"/api/v1/webhooks/{created['id']}/test", headers=user.headers)
    rows = wait_log(
        c,
        user,
        created["id"],
        lambda rows: len(rows) == 3 and all(r["attempts"] >= 2 for r in rows),
    )
    assert {r["status"] for r in rows} == {"pending"}
    assert all("connect" in r["last_error"] for r in rows)
    with receiver.running(port=port) as hook:
        hook.wait_for(lambda got: len({r.headers["webhook-id"] for r in got}) == 3)
        rows = wait_log(
            c, user, created["id"], lambda rows: {r["status"] for r in rows} == {"delivered"}
        )
    assert {r["id"] for r in rows} == {r.headers["webhook-id"] for r in hook.requests}


def test_a_slow_receiver_holds_up_neither_deliveries_nor_predictions(stack, tmp_path):
    c = stack.client
    user = register_and_login(c)
    model = insert_ready_model(user, fit_classifier(), tmp_path)
    with receiver.running() as slow, receiver.running() as fast:
        slow.delay_s = 30
        slow_endpoint = endpoint(c, user, slow.url)
        fast_endpoint = endpoint(c, user, fast.url)
        for _ in range(3):  # as many as the webhooks worker has processes
            c.post(f"/api/v1/webhooks/{slow_endpoint['id']}/test", headers=user.headers)
        slow.wait_for(lambda got: len(got) >= 1)
        started = time.monotonic()
        c.post(f"/api/v1/webhooks/{fast_endpoint['id']}/test", headers=user.headers)
        answer = c.post(
            f"/api/v1/models/{model}/predict?timeout=10",
            json={"inputs": ROWS},
            headers=user.headers,
        )
        assert answer.status_code == 200 and answer.json["status"] == "succeeded"
        fast.wait_for(lambda got: any(json.loads(r.body)["type"] == "webhook.test" for r in got))
        fast_seconds = time.monotonic() - started
        # The slow one's attempts end at WEBHOOK_TIMEOUT_S (3 s), not at the receiver's 30 s.
        rows = wait_log(
            c,
            user,
            slow_endpoint["id"],
            lambda rows: any(r["last_error"] for r in rows),
            timeout=20,
        )
    assert fast_seconds < 30
    assert any("no answer within 3 s" in (r["last_error"] or "") for r in rows)
    # Quiet before the next test empties the tables: no attempt still running.
    c.patch(
        f"/api/v1/webhooks/{slow_endpoint['id']}", json={"is_active": False}, headers=user.headers
    )
    wait_idle(stack)


def wait_idle(stack: Stack, timeout: float = 30) -> None:
    """Until the webhooks worker runs no task (its loops have ended)."""
    from shared.celery_config import create_producer
    from shared.config import Settings

    control = create_producer(Settings(**stack.env.env)).control
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = control.inspect([stack.hooks.hostname], timeout=1).active() or {}
        if active and not any(active.values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"the webhooks worker is still busy after {timeout}s")


def test_a_webhooks_worker_killed_mid_delivery_loses_no_event(stack, tmp_path):
    """A job finishes (its event is written with it); the webhooks worker is killed (SIGKILL,
    whole process group) in the middle of the attempt; the next worker delivers the event once
    the dead attempt's lease has run out, with the same id. Last in this module: it ends the
    module's webhooks worker."""
    c = stack.client
    user = register_and_login(c)
    model = insert_ready_model(user, fit_classifier(), tmp_path)
    with receiver.running() as hook:
        hook.delay_s = 60  # the first attempt hangs until its worker dies
        created = endpoint(c, user, hook.url, events=["job.succeeded"])
        job = poll(c, user, submit(c, user, model, {"inputs": ROWS}).json["id"]).json
        assert job["status"] == "succeeded"
        hook.wait_for(lambda got: len(got) >= 1)
        os.killpg(stack.hooks.pid, signal.SIGKILL)
        stack.hooks.wait()
        killed = len(hook.requests)
        (row,) = log(c, user, created["id"])
        assert row["status"] == "pending" and row["last_status_code"] is None
        hook.delay_s = 0
        with webhooks_worker(stack.env, "second"):
            rows = wait_log(c, user, created["id"], lambda rows: rows[0]["status"] == "delivered")
    assert len(hook.requests) > killed
    assert {r.headers["webhook-id"] for r in hook.requests} == {rows[0]["id"]}
    event = Webhook(created["secret"]).verify(hook.requests[-1].body, hook.requests[-1].headers)
    assert event["type"] == "job.succeeded" and event["data"]["id"] == job["id"]
