"""GET /api/v1/health reports live workers per host (issue 27: workers on many hosts), from the
host part of each Celery node name (`worker@%h`; Kubernetes: `<pod>@<node>`)."""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager

import pytest

from shared.config import Settings
from tests.fixtures.services import ROOT, _celery_cmd, log_path, stop_process_group, wait_for_worker
from web import create_app
from web.worker_count import count_by_host

pytestmark = pytest.mark.e2e


def test_count_by_host_groups_node_names():
    replies = [
        {"worker-a@node-1": {"ok": "pong"}},
        {"batch-a@node-1": {"ok": "pong"}},
        {"worker-b@node-2": {"ok": "pong"}},
        {"lonely": {"ok": "pong"}},
        {"odd@name@node-2": {"ok": "pong"}},
    ]
    assert count_by_host(replies) == {"lonely": 1, "node-1": 2, "node-2": 2}
    assert count_by_host([]) == {}


@contextmanager
def _worker_on(host: str):
    """A worker whose node name says it runs on `host`, on a queue of its own (it must not take
    other tests' jobs; a ping reaches every worker whatever its queues)."""
    hostname = f"w{os.getpid()}-{time.monotonic_ns()}@{host}"
    queue = f"{os.environ['DEFAULT_QUEUE']}-hosts"
    with open(log_path("worker-hosts"), "ab") as log:
        proc = subprocess.Popen(
            _celery_cmd(1, hostname, queue),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_worker(hostname, os.environ["REDIS_URL"])
            yield hostname
        finally:
            stop_process_group(proc)


def _hosts_until(client, wanted, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get("/api/v1/health").json
        if wanted(body["workers_by_host"]) or time.monotonic() > deadline:
            return body
        time.sleep(0.3)


def test_health_counts_workers_per_host(worker):
    """The session's worker runs on host `test`; one more on `other-host`; then it stops and its
    host leaves the report."""
    client = create_app(Settings(HEALTH_WORKERS_REFRESH_S=0.3)).test_client()
    with _worker_on("other-host"):
        body = _hosts_until(client, lambda hosts: hosts.get("other-host") and hosts.get("test"))
        hosts = body["workers_by_host"]
        assert hosts["other-host"] == 1 and hosts["test"] >= 1, hosts
        assert body["checks"]["workers"] == sum(hosts.values())
    body = _hosts_until(client, lambda hosts: "other-host" not in hosts)
    assert "other-host" not in body["workers_by_host"] and body["workers_by_host"]["test"] >= 1
